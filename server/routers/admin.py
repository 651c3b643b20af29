"""State-changing endpoints (trigger an update run, reload the publication index), behind the admin token."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel
from starlette import status

from server.auth import AdminDep
from server.deps import RegistryDep

log = logging.getLogger(__name__)

NO_SCHEDULER = "no scheduler in this process (started with --no-scheduler, or schedule.enabled = false)"


@dataclass(frozen=True)
class AdminActions:
    """What the composition root lets the admin endpoints do; the server never imports the scheduler itself."""

    # Starts an update run in the background; its id (the run's `started` in /status), or None if one is running.
    trigger_run: Callable[[], str | None]


class Detail(BaseModel):
    """Why a request was refused."""

    detail: str


class RunQueued(BaseModel):
    """An update run that was started in the background."""

    id: str
    state: Literal["queued"]
    status: str


class Reloaded(BaseModel):
    """The publication index as re-read from disk."""

    latest_version: str | None
    previous_version: str | None
    publications: int


REFUSALS: dict[int | str, dict] = {
    401: {"model": Detail, "description": "Missing or wrong bearer token"},
    403: {"model": Detail, "description": "Admin endpoints disabled: no token configured"},
}
router = APIRouter(prefix="/admin", tags=["Admin"], responses=REFUSALS)


@router.post(
    "/run",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunQueued,
    operation_id="triggerRun",
    responses={
        409: {"model": Detail, "description": "An update run is already running"},
        503: {"model": Detail, "description": "No scheduler in this process"},
    },
)
def trigger_run(request: Request, response: Response, _: AdminDep) -> RunQueued:
    """Start an update run now (what the scheduler does every interval); follow it in /status."""
    response.headers["Cache-Control"] = "no-store"
    actions: AdminActions | None = request.app.state.admin_actions
    if actions is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, NO_SCHEDULER)
    run_id = actions.trigger_run()
    if run_id is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "an update run is already running; see /status")
    log.info("update run %s started on request", run_id)
    return RunQueued(id=run_id, state="queued", status=str(request.url_for("run_status")))


@router.post("/reload", response_model=Reloaded, operation_id="reloadPublications")
def reload_publications(registry: RegistryDep, response: Response, _: AdminDep) -> Reloaded:
    """Re-read the published catalog's index now (it is otherwise re-read when its file changes)."""
    response.headers["Cache-Control"] = "no-store"
    before = registry.index().latest
    index = registry.reload()
    latest = index.latest
    log.info("publication index reloaded: latest %s (was %s)", latest and latest.id, before and before.id)
    return Reloaded(
        latest_version=latest.id if latest else None,
        previous_version=before.id if before else None,
        publications=len(index.publications),
    )
