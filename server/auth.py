"""Bearer-token authentication of the state-changing (/admin) endpoints; read endpoints stay public."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette import status

from server.errors import ServerError
from server.settings import ServerSettings

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16  # a guessable token is no protection: refuse short ones at startup
DISABLED = "admin endpoints are disabled: no admin token is configured (server.admin_token or server.admin_token_file)"

# auto_error=False: a missing header is answered by require_admin (401 with a reason), not by FastAPI's 403.
bearer = HTTPBearer(auto_error=False, description="The token of server.admin_token / server.admin_token_file")


class AdminTokenError(ServerError):
    """The configured admin token cannot be used (unreadable file, too short, set twice)."""


def load_admin_token(settings: ServerSettings) -> bytes | None:
    """The admin token from the settings or the token file; None when neither is set (admin disabled)."""
    value = settings.admin_token.get_secret_value().strip() if settings.admin_token else ""
    if settings.admin_token_file is not None:
        if value:
            raise AdminTokenError("set server.admin_token or server.admin_token_file, not both")
        try:
            value = settings.admin_token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise AdminTokenError(f"cannot read the admin token file {settings.admin_token_file}: {exc}") from None
        if not value:
            raise AdminTokenError(f"the admin token file {settings.admin_token_file} is empty")
    if not value:
        return None
    if len(value) < MIN_TOKEN_LENGTH:
        raise AdminTokenError(f"the admin token must have at least {MIN_TOKEN_LENGTH} characters")
    return value.encode("utf-8")


def _client(request: Request) -> str:
    """The peer that sent the request (the forwarded client behind a trusted proxy), for the log."""
    return request.client.host if request.client else "unknown"


def _unauthorized(reason: str, error: str | None = None) -> HTTPException:
    """401 with the challenge RFC 6750 asks for."""
    challenge = 'Bearer realm="nrt-alerts admin"' + (f', error="{error}"' if error else "")
    return HTTPException(status.HTTP_401_UNAUTHORIZED, reason, headers={"WWW-Authenticate": challenge})


def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """Let the request through only with the configured bearer token (compared in constant time)."""
    expected: bytes | None = request.app.state.admin_token
    where = f"{request.method} {request.url.path} from {_client(request)}"
    if expected is None:
        log.warning("admin request refused (disabled): %s", where)
        raise HTTPException(status.HTTP_403_FORBIDDEN, DISABLED)
    if credentials is None:
        log.warning("admin request refused (no bearer token): %s", where)
        raise _unauthorized("this endpoint needs 'Authorization: Bearer <admin token>'")
    if not hmac.compare_digest(credentials.credentials.encode("utf-8"), expected):
        log.warning("admin request refused (wrong token): %s", where)  # never the token itself
        raise _unauthorized("wrong admin token", error="invalid_token")
    log.info("admin request accepted: %s", where)


AdminDep = Annotated[None, Depends(require_admin)]
