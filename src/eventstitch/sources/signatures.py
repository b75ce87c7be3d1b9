"""Checking that a webhook delivery was signed with one of its source's secrets.

Pure functions over the raw body and the request headers: nothing here parses the body, logs,
or keeps state. Every refusal is a `SignatureRefused` (401) whose message names the source and
the problem but never a secret or the signature expected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote_plus

from eventstitch.errors import MethodNotAllowed, Unauthorized
from eventstitch.storage.records import SignatureRule

PRESETS = (
    "github",
    "stripe",
    "shopify",
    "standard_webhooks",
    "slack",
    "zoom",
    "twilio",
    "hmac",
    "token",
)
ALGORITHMS = ("sha1", "sha256", "sha512")
# Names of where a token is sent, not tokens: S105 mistakes them for hard-coded passwords.
TOKEN_HEADER = "x-webhook-token"  # noqa: S105
TOKEN_QUERY = "token"  # noqa: S105
_FIXED_HEADERS = {
    "github": "x-hub-signature-256",
    "stripe": "stripe-signature",
    "shopify": "x-shopify-hmac-sha256",
    "standard_webhooks": "webhook-signature",
    "slack": "x-slack-signature",
    "zoom": "x-zm-signature",
    "twilio": "x-twilio-signature",
}
HEADERS_EVENTSTITCH_READS = frozenset(
    {
        "accept",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "host",
        "origin",
        "transfer-encoding",
        # The delivery-id headers of ingest.storing.DELIVERY_ID_HEADERS.
        "idempotency-key",
        "x-event-id",
        "x-github-delivery",
        "webhook-id",
        "x-shopify-webhook-id",
    }
)
"""Headers Eventstitch reads, answers with or keeps for itself: none may carry a source's
secret (a token there would become a delivery key, be echoed in a 415 or be kept by a
refusal no source is known for), so a source may not name one as its signature header."""
QUERY_COVERING_PRESETS = frozenset({"token", "twilio"})
"""Presets whose check covers a GET's query string. A token authenticates the request as a
whole, and Twilio signs the whole URL; every other HMAC preset signs only the body, and a
GET's empty body signs nothing it carries (its signature is the same for every GET, so one
seen ping would forge any query)."""
_QUERY_SEPARATOR = re.compile(r"[&;]")
# Slack and Zoom sign `v0:{timestamp}:{body}` alike, each with its own timestamp header.
_V0_TIMESTAMP_HEADERS = {"slack": "x-slack-request-timestamp", "zoom": "x-zm-request-timestamp"}
_DIGITS = re.compile(r"[0-9]{1,12}")
_WHSEC = "whsec_"


class SignatureRefused(Unauthorized):
    """A delivery to a signed source without a valid signature; nothing is stored."""

    reason = "bad_signature"


def signature_header(rule: SignatureRule) -> str:
    """The lower-case header that carries the signature (or token) under this rule."""
    return _FIXED_HEADERS.get(rule.preset) or rule.header or TOKEN_HEADER


def covered_methods(rule: SignatureRule) -> tuple[str, ...]:
    """The methods whose content this rule's check covers: POST always (the body is signed),
    GET only for presets whose sender authenticates the query too."""
    return ("GET", "POST") if rule.preset in QUERY_COVERING_PRESETS else ("POST",)


def check_method(rule: SignatureRule, *, source_id: str, method: str) -> None:
    """Refuse (405, `unsigned_method`) a method whose content the signature does not cover."""
    allowed = covered_methods(rule)
    if method not in allowed:
        raise MethodNotAllowed(
            f"source {source_id!r} is signed over the body ({rule.preset}), which a {method} "
            f"does not have; send {' or '.join(allowed)}",
            errors=[{"field": "method", "value": method, "allowed": list(allowed)}],
            reason="unsigned_method",
            headers={"Allow": ", ".join(allowed)},
        )


def without_secret(
    rule: SignatureRule | None, headers: dict[str, str], query_string: str
) -> tuple[dict[str, str], str]:
    """Headers and query string to keep, without what carries this rule's secret: the header
    its signature (or token) comes in, whatever its name, any header or query parameter whose
    text holds one of the secrets, and a token preset's `token` parameter. Without a rule both
    come back as they are (no copy: the hot path)."""
    if rule is None:
        return headers, query_string
    name = signature_header(rule)
    kept = {
        k: v
        for k, v in headers.items()
        if k != name and not any(secret in v for secret in rule.secrets)
    }
    query = strip_token(query_string, secrets=rule.secrets, by_name=rule.preset == "token")
    return kept, query


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after `whsec_`; ValueError if
    it is not base64."""
    encoded = secret[len(_WHSEC) :] if secret.startswith(_WHSEC) else secret
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError("a standard_webhooks secret is whsec_ followed by base64") from None


def verify(
    rule: SignatureRule,
    *,
    source_id: str,
    body: bytes,
    headers: Mapping[str, str],
    query_string: str,
    now: float,
) -> None:
    """Return if the delivery carries a valid signature under `rule`, else raise
    SignatureRefused. `headers`: the first value of each header, by lower-case name."""
    name = signature_header(rule)
    presented = headers.get(name)
    if rule.preset == "token":
        if presented is None:
            presented = _query_token(query_string)
        if presented is None:
            raise _refused(source_id, name, "missing", f"no {name} header or ?{TOKEN_QUERY}= given")
        wanted = presented.strip().encode("utf-8", "surrogateescape")
        if not any(hmac.compare_digest(wanted, s.encode()) for s in rule.secrets):
            raise _refused(source_id, name, "mismatch", "token does not match", "bad_signature")
        return
    if presented is None:
        raise _refused(source_id, name, "missing", f"no {name} header")
    presented = presented.strip()
    if rule.preset == "github":
        _check(rule, source_id, name, [_after(presented, "sha256=", source_id, name)], body)
    elif rule.preset == "shopify":
        _check(rule, source_id, name, [presented], body)
    elif rule.preset == "hmac":
        _check(rule, source_id, name, [_after(presented, rule.prefix, source_id, name)], body)
    elif rule.preset == "stripe":
        stamp, candidates = _stripe_header(presented, source_id, name)
        _fresh(rule, source_id, name, stamp, now)
        _check(rule, source_id, name, candidates, stamp.encode() + b"." + body)
    elif rule.preset in _V0_TIMESTAMP_HEADERS:
        stamp_header = _V0_TIMESTAMP_HEADERS[rule.preset]
        stamp = _required(headers, stamp_header, source_id)
        _fresh(rule, source_id, stamp_header, stamp, now)
        signed = b"v0:" + stamp.encode("latin-1") + b":" + body
        _check(rule, source_id, name, [_after(presented, "v0=", source_id, name)], signed)
    elif rule.preset == "twilio":
        signed = _twilio_signed(rule, source_id, body, headers, query_string)
        _check(rule, source_id, name, [presented], signed)
    elif rule.preset == "standard_webhooks":
        message_id = _required(headers, "webhook-id", source_id)
        stamp = _required(headers, "webhook-timestamp", source_id)
        _fresh(rule, source_id, "webhook-timestamp", stamp, now)
        candidates = [
            part[3:] for part in presented.split(" ") if part.startswith("v1,") and len(part) > 3
        ]
        if not candidates:
            raise _refused(source_id, name, "malformed", "no v1,<base64> signature in it")
        signed = f"{message_id}.{stamp}.".encode("latin-1") + body
        _check(rule, source_id, name, candidates, signed)
    else:  # a preset stored by a newer version: refuse rather than accept unchecked
        raise _refused(source_id, name, "malformed", f"preset {rule.preset!r} is not known")


def sign(rule: SignatureRule, secret: str, signed: bytes) -> str:
    """The encoded HMAC of `signed` under `rule` with `secret` (what a sender computes)."""
    standard = rule.preset == "standard_webhooks"
    key = standard_webhooks_key(secret) if standard else secret.encode()
    algorithm = {"hmac": rule.algorithm, "twilio": "sha1"}.get(rule.preset, "sha256")
    digest = hmac.new(key, signed, algorithm).digest()
    base64_presets = ("shopify", "standard_webhooks", "twilio")
    if rule.preset in base64_presets or (rule.preset == "hmac" and rule.encoding == "base64"):
        return base64.b64encode(digest).decode()
    return digest.hex()


def _twilio_signed(
    rule: SignatureRule,
    source_id: str,
    body: bytes,
    headers: Mapping[str, str],
    query_string: str,
) -> bytes:
    """What Twilio signs: the URL it requested (the source's public URL and the query sent),
    then, for a form body, each parameter's name and value in name order. A JSON body is
    covered by the URL's `bodySHA256` parameter instead, checked here."""
    url = rule.url + ("?" + query_string if query_string else "")
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        text = body.decode("utf-8", "surrogateescape")
        pairs = sorted(parse_qsl(text, keep_blank_values=True))
        url += "".join(key + value for key, value in pairs)
    elif body:
        digest = dict(parse_qsl(query_string)).get("bodySHA256", "")
        wanted = hashlib.sha256(body).hexdigest().encode()
        if not hmac.compare_digest(wanted, digest.encode("utf-8", "surrogateescape")):
            raise _refused(
                source_id,
                "bodySHA256",
                "mismatch",
                "bodySHA256 does not match the body",
                "bad_signature",
            )
    return url.encode("utf-8", "surrogateescape")


def strip_token(query_string: str, *, secrets: tuple[str, ...] = (), by_name: bool = True) -> str:
    """The query string without what may carry a token, so the secret is never stored: every
    parameter named `token` (`by_name`; in any case or escaping), and every parameter whose
    decoded text holds one of `secrets`. Parameters are split on `&` and on `;`, since
    servers and frameworks read either as a separator."""
    lowered = query_string.lower()
    if (
        not (by_name and TOKEN_QUERY in lowered)
        and "%" not in query_string
        and "+" not in query_string
        and not any(secret in query_string for secret in secrets)
    ):
        return query_string
    # Piece by piece, so that the rest stays exactly as sent (re-encoding would turn "%20"
    # into "+" and "flag" into "flag=", and change what a GET stores as properties).
    pieces = _QUERY_SEPARATOR.split(query_string)
    separators = _QUERY_SEPARATOR.findall(query_string)
    kept: list[str] = []
    for index, piece in enumerate(pieces):
        decoded = unquote_plus(piece)
        name = decoded.split("=", 1)[0].strip().lower()
        if (by_name and name == TOKEN_QUERY) or any(secret in decoded for secret in secrets):
            continue
        if kept:
            kept.append(separators[index - 1])
        kept.append(piece)
    return "".join(kept)


def _check(
    rule: SignatureRule, source_id: str, name: str, candidates: list[str], signed: bytes
) -> None:
    """Accept if any presented signature equals the one any secret makes, compared as the
    exact text sent (a changed character is a refusal, never a second spelling of the same)."""
    for secret in rule.secrets:
        expected = sign(rule, secret, signed).encode()
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate.encode("utf-8", "surrogateescape")):
                return
    raise _refused(
        source_id, name, "mismatch", "signature does not match the body", "bad_signature"
    )


def _required(headers: Mapping[str, str], name: str, source_id: str) -> str:
    value = headers.get(name)
    if value is None:
        raise _refused(source_id, name, "missing", f"no {name} header")
    return value.strip()


def _after(value: str, prefix: str, source_id: str, name: str) -> str:
    if not value.startswith(prefix) or len(value) == len(prefix):
        raise _refused(source_id, name, "malformed", f"expected {prefix}<signature>")
    return value[len(prefix) :]


def _stripe_header(value: str, source_id: str, name: str) -> tuple[str, list[str]]:
    """The timestamp and the v1 signatures of a `t=...,v1=...[,v1=...]` header."""
    stamp = None
    candidates = []
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        if key == "t":
            stamp = item
        elif key == "v1" and item:
            candidates.append(item)
    if stamp is None or not candidates:
        raise _refused(source_id, name, "malformed", "expected t=<unix time>,v1=<hex>")
    return stamp, candidates


def _fresh(rule: SignatureRule, source_id: str, name: str, stamp: str, now: float) -> None:
    if not _DIGITS.fullmatch(stamp):
        raise _refused(source_id, name, "malformed", "timestamp is not a unix time in seconds")
    if abs(now - int(stamp)) > rule.tolerance_seconds:
        raise _refused(
            source_id,
            name,
            "outside_tolerance",
            f"timestamp is more than {rule.tolerance_seconds} s from now",
            "stale_signature",
        )


def _query_token(query_string: str) -> str | None:
    if TOKEN_QUERY not in query_string:
        return None
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        if key == TOKEN_QUERY:
            return value
    return None


_REASONS = {"missing": "missing_signature", "malformed": "malformed_signature"}


def _refused(
    source_id: str, header: str, problem: str, detail: str, reason: str | None = None
) -> SignatureRefused:
    return SignatureRefused(
        f"source {source_id!r} requires a signature: {detail}",
        errors=[{"field": header, "problem": problem}],
        reason=reason or _REASONS[problem],
    )
