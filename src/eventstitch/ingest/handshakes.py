"""Senders' URL checks (handshakes), answered the way each sender expects and stored as nothing.

Before a sender delivers events to a URL, some of them check it: Slack posts a
`url_verification` challenge, Meta (Facebook, Instagram, WhatsApp) sends a `GET` with
`hub.challenge`, Zoom posts an `endpoint.url_validation` token, Mailchimp sends a bare `GET`.
One table says, per sender, the exact shape that is its handshake, what must hold before it is
answered, and the answer. A request is a handshake only when it has exactly that shape (the
keys, and the fixed values), so that no real event is ever mistaken for one.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_plus

import orjson

from eventstitch.errors import BadRequest, Forbidden, clip
from eventstitch.ingest.parsing import parse_form
from eventstitch.ingest.schemas import WebhookRequest
from eventstitch.sources.signatures import strip_token
from eventstitch.storage.records import SourceRecord

MAX_VALUE = 512
"""The longest challenge or token answered; a handshake's are a few dozen characters."""
MAX_BODY = 4096
"""A body longer than this is never looked at as a handshake (theirs are about 100 bytes)."""
VERIFY_TOKEN_PARAMETER = "hub.verify_token"  # noqa: S105  # a parameter's name, not a secret

Check = Literal["signature", "secret", "verify_token"]
"""What must hold before a handshake is answered: `signature`, the source's signature rule
(if it has one) as for an event; `secret`, that too, and a secret to answer with; `verify_token`,
the token sent equal to one of the source's secrets."""


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer that is not an event's: what a sender's handshake expects."""

    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Handshake:
    """One sender's handshake: the method it comes with, how it is recognised (the values the
    answer needs, or None when the request is not this handshake), what must hold, and the
    answer (from those values and the source's first secret, if any)."""

    sender: str
    method: str
    recognise: Callable[[WebhookRequest], dict[str, str] | None]
    check: Check
    answer: Callable[[dict[str, str], str | None], Reply]


def _json_object(request: WebhookRequest, marker: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, when it is short and holds `marker` (a cheap test first:
    this runs on every POST)."""
    body = request.body
    if len(body) > MAX_BODY or marker not in body:
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _slack(request: WebhookRequest) -> dict[str, str] | None:
    """`{"token", "challenge", "type": "url_verification"}`, and nothing else."""
    value = _json_object(request, b"url_verification")
    if value is None or value.get("type") != "url_verification":
        return None
    if "challenge" not in value or not set(value) <= {"token", "challenge", "type"}:
        return None
    return {"challenge": _text(value["challenge"], "challenge")}


def _zoom(request: WebhookRequest) -> dict[str, str] | None:
    """`{"event": "endpoint.url_validation", "payload": {"plainToken"}, "event_ts"?}`."""
    value = _json_object(request, b"endpoint.url_validation")
    if value is None or value.get("event") != "endpoint.url_validation":
        return None
    payload = value.get("payload")
    if not isinstance(payload, dict) or set(payload) != {"plainToken"}:
        return None
    if not set(value) <= {"event", "payload", "event_ts"}:
        return None
    return {"plain_token": _text(payload["plainToken"], "payload.plainToken")}


def _meta(request: WebhookRequest) -> dict[str, str] | None:
    """`?hub.mode=subscribe&hub.challenge=...&hub.verify_token=...`, and nothing else."""
    query = request.query_string
    if "hub.mode" not in query:
        return None
    fields = parse_form(query)
    if set(fields) != {"hub.mode", "hub.challenge", VERIFY_TOKEN_PARAMETER}:
        return None
    if fields["hub.mode"] != "subscribe":
        return None
    return {
        "challenge": _text(fields["hub.challenge"], "hub.challenge"),
        "verify_token": _text(fields[VERIFY_TOKEN_PARAMETER], VERIFY_TOKEN_PARAMETER),
    }


def _mailchimp(request: WebhookRequest) -> dict[str, str] | None:
    """A GET with no query (a `token` parameter aside: the token preset's): nothing to store."""
    return {} if not strip_token(request.query_string) and not request.body else None


def _echo_json(values: dict[str, str], _: str | None) -> Reply:
    return Reply(200, "application/json", orjson.dumps({"challenge": values["challenge"]}))


def _echo_text(values: dict[str, str], _: str | None) -> Reply:
    return Reply(200, "text/plain; charset=utf-8", values["challenge"].encode())


def _zoom_answer(values: dict[str, str], secret: str | None) -> Reply:
    assert secret is not None  # the check `secret` made sure of it
    plain = values["plain_token"]
    encrypted = hmac.new(secret.encode(), plain.encode(), "sha256").hexdigest()
    return Reply(
        200, "application/json", orjson.dumps({"plainToken": plain, "encryptedToken": encrypted})
    )


def _ok(_: dict[str, str], __: str | None) -> Reply:
    return Reply(200, "application/json", orjson.dumps({"ok": True, "handshake": "mailchimp"}))


HANDSHAKES = (
    Handshake("slack", "POST", _slack, "signature", _echo_json),
    Handshake("zoom", "POST", _zoom, "secret", _zoom_answer),
    Handshake("meta", "GET", _meta, "verify_token", _echo_text),
    Handshake("mailchimp", "GET", _mailchimp, "signature", _ok),
)
SENDERS = tuple(h.sender for h in HANDSHAKES)


def recognise(request: WebhookRequest) -> tuple[Handshake, dict[str, str]] | None:
    """The handshake this request is, with the values its answer needs; None for an event."""
    for handshake in HANDSHAKES:
        if handshake.method == request.method:
            values = handshake.recognise(request)
            if values is not None:
                return handshake, values
    return None


def reply(handshake: Handshake, values: dict[str, str], source: SourceRecord) -> Reply:
    """The answer once the handshake's own check holds (403 when it does not); the source's
    signature, for the checks that need it, was verified before."""
    secrets = source.signature.secrets if source.signature else ()
    if handshake.check in ("secret", "verify_token") and not secrets:
        raise Forbidden(
            f"source {source.id!r} has no secret to answer {handshake.sender}'s URL check with;"
            " give it a signature rule",
            errors=[{"field": "signature", "sender": handshake.sender}],
            reason="handshake_refused",
        )
    if handshake.check == "verify_token":
        sent = values["verify_token"].encode("utf-8", "surrogateescape")
        if not any(hmac.compare_digest(sent, s.encode()) for s in secrets):
            raise Forbidden(
                f"source {source.id!r}: {VERIFY_TOKEN_PARAMETER} matches none of its secrets",
                errors=[{"field": VERIFY_TOKEN_PARAMETER, "problem": "mismatch"}],
                reason="bad_verify_token",
            )
    return handshake.answer(values, secrets[0] if secrets else None)


def without_verify_token(query_string: str) -> str:
    """The query string without `hub.verify_token`, so it is never kept in clear."""
    if "verify_token" not in query_string and "%" not in query_string:
        return query_string
    return "&".join(
        piece
        for piece in query_string.split("&")
        if unquote_plus(piece.split("=", 1)[0]) != VERIFY_TOKEN_PARAMETER
    )


def was_handshake(request: WebhookRequest) -> bool:
    """Whether a kept request was a handshake (a Meta one kept without its verify token)."""
    try:
        if recognise(request) is not None:
            return True
    except BadRequest:
        return True
    return request.method == "GET" and {"hub.mode", "hub.challenge"} <= set(
        parse_form(request.query_string)
    )


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_VALUE:
        raise BadRequest(
            f"{field} must be a string of 1 to {MAX_VALUE} characters, got {clip(value, 40)}",
            errors=[{"field": field, "limit": MAX_VALUE}],
            reason="bad_handshake",
        )
    return value
