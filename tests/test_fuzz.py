"""Fuzz every operation of our OpenAPI document with schemathesis: no 5xx, no traceback, declared content types."""

from __future__ import annotations

import os

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance
from test_admin import TOKEN

from server.app import create_app
from server.settings import ServerSettings

from conftest import DemoRun

# Examples per operation: bounded so the whole file stays under ~2 minutes on 2 cores. Setting the variable
# (e.g. NRT_ALERTS_FUZZ_EXAMPLES=300) digs deeper with fresh random inputs on every run.
EXAMPLES = int(os.environ.get("NRT_ALERTS_FUZZ_EXAMPLES", "25"))
DIGGING = "NRT_ALERTS_FUZZ_EXAMPLES" in os.environ
TRACEBACK_MARKS = ("Traceback", 'File "')


@schemathesis.check
def no_traceback(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """No response body shows a Python traceback (internals, paths) to a client."""
    text = response.content.decode("utf-8", "replace")
    for mark in TRACEBACK_MARKS:
        if mark in text:
            raise AssertionError(f"the response body contains {mark!r}: {text[:300]}")


@pytest.fixture(scope="module")
def api_schema(static_run: DemoRun) -> schemathesis.BaseSchema:
    """Our OpenAPI document, served by the app around the shared static run (admin enabled, so it is listed)."""
    app = create_app(ServerSettings(stac_dir=static_run.cfg.output.stac_dir, admin_token=TOKEN))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not DIGGING,  # the same inputs on every CI run: a failure here is a bug, never bad luck
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_every_generated_request(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error, no_traceback, content_type_conformance])


def test_every_operation_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    """The parametrisation above covers the whole document, the admin operations included."""
    operations = {f"{op.method.upper()} {op.path}" for op in (r.ok() for r in api_schema.get_all_operations())}
    assert len(operations) >= 20
    assert {"POST /admin/run", "POST /admin/reload", "GET /wms", "GET /point/{lon},{lat}"} <= operations
    assert "GET /layers/{layer}/tiles/{tileMatrixSetId}/{z}/{x}/{y}.{format}" in operations


def test_points_outside_the_crs_domain_are_not_found(static_run: DemoRun) -> None:
    """Found by the fuzzer: PROJ cannot put 66 degrees west into UTM 33N at all, which was a 500."""
    client = TestClient(create_app(ServerSettings(stac_dir=static_run.cfg.output.stac_dir)))
    for path in ("/point/-66.0,0.0", "/layers/alerts/point/-66.0,0.0", "/layers/alert-magnitude/point/-120,10"):
        response = client.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["detail"].startswith("Point is outside dataset bounds")
