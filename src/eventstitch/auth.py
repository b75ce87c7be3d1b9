"""The bearer token that guards `/api`: where it comes from and how it is checked."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from eventstitch.config import Config
from eventstitch.errors import Unauthorized
from eventstitch.files import PRIVATE_FILE, private_dir

TOKEN_FILE = "api-token"  # noqa: S105 - a file name, not a secret

_bearer = HTTPBearer(auto_error=False, description="EVENTSTITCH_API_TOKEN or the generated token")


def token_path(config: Config) -> Path:
    return config.data_dir / TOKEN_FILE


def ensure_api_token(config: Config) -> tuple[str, bool]:
    """The token in force, and whether it was created just now (to print it once).

    `EVENTSTITCH_API_TOKEN` wins; otherwise the token kept in the data folder, created with
    owner-only permissions on first use.
    """
    if config.api_token:
        return config.api_token, False
    path = token_path(config)
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), False
    private_dir(path.parent)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:  # another worker won the race; use its token
        return path.read_text(encoding="utf-8").strip(), False
    os.fchmod(fd, PRIVATE_FILE)  # the mode given to open passes through the umask
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, True


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    """FastAPI dependency: refuse a missing or wrong bearer token, compared in constant time.
    Declared with Security so that OpenAPI (and /docs) shows the bearer scheme."""
    expected: str = request.app.state.api_token
    if credentials is None or not hmac.compare_digest(
        credentials.credentials.encode(), expected.encode()
    ):
        raise Unauthorized(
            "a valid 'Authorization: Bearer <token>' header is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
