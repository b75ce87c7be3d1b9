"""Console sign-in: a signed, expiring session cookie and the CSRF token it carries.

The cookie holds no secret of its own: a random CSRF token and the time of sign-in, signed with a
key derived from the API token. Changing the API token therefore signs every console user out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE_NAME = "eventstitch_console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
_SALT = "eventstitch-console-session"


@dataclass(frozen=True)
class Session:
    """A signed-in browser: the token its forms must send back with each change."""

    csrf: str


def _serializer(api_token: str) -> URLSafeTimedSerializer:
    key = hmac.new(api_token.encode(), b"console-session-key", hashlib.sha256).hexdigest()
    return URLSafeTimedSerializer(key, salt=_SALT)


def token_matches(given: str, api_token: str) -> bool:
    """Whether the token typed into the sign-in form is the API token (constant time)."""
    return hmac.compare_digest(given.strip().encode(), api_token.encode())


def start(response: Response, *, request: Request, api_token: str, max_age: int) -> None:
    """Set a new session cookie: HttpOnly, SameSite=Strict, Secure when the request was HTTPS."""
    value = _serializer(api_token).dumps({"csrf": secrets.token_urlsafe(32)})
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def end(response: Response) -> None:
    """Remove the session cookie."""
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")


def current(request: Request, *, api_token: str, max_age: int) -> Session | None:
    """The session of this request, or None when the cookie is missing, forged or expired."""
    value = request.cookies.get(COOKIE_NAME)
    if not value:
        return None
    try:
        data = _serializer(api_token).loads(value, max_age=max_age)
    except BadSignature:  # SignatureExpired is a BadSignature too
        return None
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
        return None
    return Session(csrf=data["csrf"])


def csrf_ok(session: Session, given: str | None) -> bool:
    """Whether a state-changing request carries this session's CSRF token."""
    return given is not None and hmac.compare_digest(given.encode(), session.csrf.encode())
