"""What the analytics SDKs send, read: the write key, the batch, and each message as an event
with its identity claim. Pure functions; `sdk_service` does the I/O.

Two wire families: Segment's (also RudderStack's) HTTP tracking API, and PostHog's capture
API. Each message is checked on its own, so one bad message refuses only itself.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from eventstitch.errors import (
    BadRequest,
    EventstitchError,
    Unauthorized,
    Unprocessable,
    clip,
)
from eventstitch.identity.normalise import normalise
from eventstitch.identity.rules import Policy
from eventstitch.ingest.parsing import normalise_event_type
from eventstitch.storage.records import Claim, Identifier

Family = Literal["segment", "posthog"]

SEGMENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
POSTHOG_TYPES = {
    "$pageview": "page",
    "$screen": "screen",
    "$identify": "identify",
    "$set": "identify",
    "$create_alias": "alias",
    "$groupidentify": "group",
}
"""PostHog's own events, named as Segment's are, so both families count alike."""
KEY_FIELDS = ("writeKey", "api_key", "token")
"""Where a body may carry the key; never kept in a stored event."""
MAX_MESSAGE_ID = 256


@dataclass(frozen=True, slots=True)
class SdkMessage:
    """One message as an event: its type, properties, context, claim and delivery id."""

    type: str
    properties: dict[str, Any]
    context: dict[str, Any]
    claim: Claim | None
    delivery_key: str | None


def header_key(headers: Mapping[str, str]) -> str | None:
    """The key a request's headers carry: Basic auth (`key:`, Segment and Rudder), Bearer
    (PostHog v1), or `X-Write-Key`."""
    auth = headers.get("authorization", "").strip()
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            user = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user.partition(":")[0] or None
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-write-key", "").strip() or None


def body_key(body: Any, messages: list[Any]) -> str | None:
    """The key a body carries (`writeKey`, `api_key`, `token`), at its top or in its first
    message (PostHog's single-event routes)."""
    for holder in (body, messages[0] if messages else None):
        if isinstance(holder, dict):
            for field in KEY_FIELDS:
                found = holder.get(field)
                if isinstance(found, str) and found:
                    return found
    return None


def messages_of(body: Any, *, family: Family, single_type: str | None) -> list[Any]:
    """The messages of a request: a batch's list, or the one message of a single-message
    route; anything else is not a batch (400)."""
    if isinstance(body, dict) and isinstance(body.get("batch"), list):
        return list(body["batch"])
    if family == "posthog" and isinstance(body, list):
        return body
    if isinstance(body, dict) and (
        (family == "segment" and single_type is not None)
        or (family == "posthog" and "event" in body)
    ):
        return [{"type": single_type, **body} if single_type else body]
    raise BadRequest(
        'body is not a batch: expected {"batch": [...]}'
        + (" or one message" if single_type or family == "posthog" else ""),
        errors=[{"field": "batch"}],
        reason="not_a_batch",
    )


def sent_at_of(body: Any) -> str | None:
    """When the SDK sent the request, by its clock (`sentAt`, `sent_at`, `created_at`)."""
    if isinstance(body, dict):
        for field in ("sentAt", "sent_at", "created_at"):
            if isinstance(body.get(field), str):
                return str(body[field])
    return None


def _bad(field: str, problem: str, reason: str = "bad_message") -> Unprocessable:
    return Unprocessable(f"{field} {problem}", errors=[{"field": field}], reason=reason)


def _instant(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(field, f"must be an ISO 8601 time, got {clip(value, 40)}", "bad_timestamp")
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(
            field, f"must be an ISO 8601 time, got {clip(value, 40)}", "bad_timestamp"
        ) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def times(timestamp: Any, sent_at: Any, received_ms: int) -> dict[str, Any]:
    """The client's times as kept in the context, with the timestamp corrected for the client
    clock's skew the way Segment does it: received - sentAt + timestamp."""
    when = _instant(timestamp, "timestamp")
    sent = _instant(sent_at, "sentAt")
    kept: dict[str, Any] = {}
    if when is None:
        return kept
    kept["timestamp"] = timestamp
    if sent is None:
        kept["timestamp_corrected"] = when.isoformat(timespec="milliseconds")
        return kept
    kept["sent_at"] = sent_at
    received = datetime.fromtimestamp(received_ms / 1000, tz=UTC)
    kept["timestamp_corrected"] = (received - sent + when).isoformat(timespec="milliseconds")
    return kept


def _object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(field, "must be an object")
    return value


def _message_id(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or len(value) > MAX_MESSAGE_ID:
        raise _bad(field, f"must be a string of at most {MAX_MESSAGE_ID} characters")
    return value


def _without_keys(values: dict[str, Any]) -> dict[str, Any]:
    """A mapping without the fields that may carry the write key."""
    if not any(field in values for field in KEY_FIELDS):
        return values
    return {k: v for k, v in values.items() if k not in KEY_FIELDS}


class _Identity:
    """Identifiers of one message, normalised as every source's rules normalise them."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.found: dict[Identifier, None] = {}
        self.create = False

    def add(self, kind: str, raw: Any, *, creates: bool = False) -> None:
        value = normalise(
            kind, raw, default_region=self.policy.default_region, junk=self.policy.junk
        )
        if value is not None:
            self.found[(kind, value)] = None
            self.create = self.create or creates

    def claim(self, traits: Mapping[str, Any], once: Mapping[str, Any]) -> Claim | None:
        if not self.found:
            return None
        return Claim(tuple(self.found), self.create, dict(traits), traits_once=dict(once))


def segment_message(message: Any, *, sent_at: Any, received_ms: int, policy: Policy) -> SdkMessage:
    """A Segment or RudderStack message as an event: `track` takes its `event` as the type,
    the others their own type; `userId` and an email in the traits identify (a profile is
    created), `anonymousId` is remembered until they do."""
    msg = _without_keys(_object(message, "message"))
    kind = msg.get("type")
    if kind not in SEGMENT_TYPES:
        raise _bad("type", f"must be one of {sorted(SEGMENT_TYPES)}, got {clip(kind, 40)}")
    context = _without_keys(_object(msg.get("context"), "context"))
    traits = _object(msg.get("traits"), "traits")
    context_traits = _object(context.get("traits"), "context.traits")
    if kind == "track":
        name = msg.get("event")
        if not isinstance(name, str) or not name.strip():
            raise _bad("event", f"must be a non-empty string, got {clip(name, 40)}")
        event_type = normalise_event_type(name)
    else:
        event_type = kind
    properties = _without_keys(_object(msg.get("properties"), "properties"))
    if kind in ("page", "screen") and isinstance(msg.get("name"), str):
        properties = {"name": msg["name"], **properties}
    elif kind == "identify":
        properties = dict(traits)
    elif kind == "group":
        properties = {"group_id": msg.get("groupId"), "traits": traits}
    elif kind == "alias":
        properties = {"previous_id": msg.get("previousId")}
    who = _Identity(policy)
    user_id, anonymous_id = msg.get("userId"), msg.get("anonymousId")
    who.add("user_id", user_id, creates=True)
    who.add("email", traits.get("email") if kind == "identify" else None, creates=True)
    who.add("email", context_traits.get("email"), creates=True)
    who.add("anonymous_id", anonymous_id)
    if kind == "alias":
        # The id it was known by: an anonymous id, or an earlier user id (then the guard on
        # single-valued kinds decides, as for any other event).
        who.add("anonymous_id", msg.get("previousId"))
        who.add("user_id", msg.get("previousId"))
    user_traits = {**context_traits, **(traits if kind == "identify" else {})}
    extra = {k: v for k, v in msg.items() if k in ("channel", "integrations") and v is not None}
    return SdkMessage(
        type=event_type,
        properties=properties,
        context={
            "sdk": context,
            "user_id": user_id,
            "anonymous_id": anonymous_id,
            **extra,
            **times(msg.get("timestamp"), sent_at, received_ms),
        },
        claim=who.claim(user_traits, {}),
        delivery_key=_message_id(msg.get("messageId"), "messageId"),
    )


def posthog_message(message: Any, *, sent_at: Any, received_ms: int, policy: Policy) -> SdkMessage:
    """A PostHog event as an event: its name as the type (PostHog's own `$` events named as
    Segment's); `distinct_id` is remembered as an anonymous id until an `$identify` names it a
    user (or a `$set` makes a person of it); `$set` and `$set_once` become traits;
    `$process_person_profile: false` keeps it profile-less for good."""
    msg = _without_keys(_object(message, "message"))
    name = msg.get("event")
    if not isinstance(name, str) or not name.strip():
        raise _bad("event", f"must be a non-empty string, got {clip(name, 40)}")
    event_type = POSTHOG_TYPES.get(name) or normalise_event_type(name.removeprefix("$"))
    properties = _without_keys(_object(msg.get("properties"), "properties"))
    distinct_id = msg.get("distinct_id", properties.get("distinct_id"))
    if normalise("anonymous_id", distinct_id, junk=frozenset()) is None:
        raise _bad("distinct_id", f"must be a non-empty string, got {clip(distinct_id, 40)}")
    who = _Identity(policy)
    # `$set` makes a person of the distinct id (PostHog's `set()`), without saying it is a
    # user's: a later alias to a user id may still merge it.
    who.add("anonymous_id", distinct_id, creates=name == "$set")
    if name == "$identify":
        who.add("user_id", distinct_id, creates=True)
        who.add("anonymous_id", properties.get("$anon_distinct_id"))
    if name == "$create_alias":
        who.add("anonymous_id", properties.get("distinct_id"))
        who.add("anonymous_id", properties.get("alias"))
    # posthog-python's `set()` sends `$set` beside `properties`, posthog-js inside them: both.
    sets = {
        **_object(msg.get("$set"), "$set"),
        **_object(properties.get("$set"), "properties.$set"),
    }
    once = {
        **_object(msg.get("$set_once"), "$set_once"),
        **_object(properties.get("$set_once"), "properties.$set_once"),
    }
    who.add("email", sets.get("email"), creates=True)
    keep_profile_less = properties.get("$process_person_profile") is False
    return SdkMessage(
        type=event_type,
        properties=properties,
        context={
            "distinct_id": distinct_id,
            **({"event": name} if name != event_type else {}),
            **times(msg.get("timestamp"), sent_at, received_ms),
        },
        claim=None if keep_profile_less else who.claim(sets, once),
        delivery_key=_message_id(msg.get("uuid"), "uuid"),
    )


def read_message(
    family: Family, message: Any, *, sent_at: Any, received_ms: int, policy: Policy
) -> SdkMessage:
    """One message of either family; raises the refusal that sends it to the quarantine."""
    read = segment_message if family == "segment" else posthog_message
    return read(message, sent_at=sent_at, received_ms=received_ms, policy=policy)


def missing_key(family: Family) -> EventstitchError:
    where = "Basic auth, X-Write-Key or writeKey" if family == "segment" else "api_key or Bearer"
    return Unauthorized(
        f"no write key: send the source's write_key in {where}",
        errors=[{"field": "write_key"}],
        reason="missing_write_key",
    )
