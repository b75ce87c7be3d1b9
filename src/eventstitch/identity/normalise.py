"""Identifier values, normalised once before any lookup, and the junk that identifies nobody.

The same person must yield the same (kind, value) whichever webhook or tracker reports them:
emails are trimmed and lower-cased, phones become E.164, other ids are trimmed. Values that
placeholder code sends when it knows nothing (`undefined`, `null`, `0`, `[object Object]`...)
are dropped, or every anonymous visitor would be merged into one profile.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers

JUNK_VALUES: frozenset[str] = frozenset(
    {
        "",
        "0",
        "-1",
        "null",
        "nil",
        "none",
        "(none)",
        "<nil>",
        "undefined",
        "nan",
        "true",
        "false",
        "anonymous",
        "anon",
        "guest",
        "unknown",
        "n/a",
        "na",
        "not set",
        "[object object]",
        "{}",
        "[]",
    }
)
"""Compared after trimming and lower-casing; extend with EVENTSTITCH_IDENTITY_JUNK_VALUES."""

MAX_VALUE_LENGTH = 256
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def valid_kind(kind: str) -> bool:
    """Kinds are short lower-case names: email, phone, user_id, or one the user names."""
    return bool(_KIND.match(kind))


def junk_set(extra: Iterable[str] = ()) -> frozenset[str]:
    """The built-in junk list plus the configured extras, compared in lower case."""
    return JUNK_VALUES | {value.strip().lower() for value in extra}


def normalise(
    kind: str, raw: object, *, default_region: str | None = None, junk: frozenset[str] = JUNK_VALUES
) -> str | None:
    """The value that identifies, or None when `raw` cannot identify anyone."""
    if raw is None or isinstance(raw, bool | dict | list):
        return None
    if isinstance(raw, float):
        if not raw.is_integer():
            return None
        raw = int(raw)
    text = str(raw).strip()
    if text.lower() in junk or len(text) > MAX_VALUE_LENGTH:
        return None
    if kind == "email":
        # Checked again once lower-cased: "İ" lower-cases to two characters, so a value within
        # the limit as sent can outgrow it (then it identifies nobody, like any longer value).
        value = text.lower()
        return value if len(value) <= MAX_VALUE_LENGTH and _EMAIL.match(value) else None
    if kind == "phone":
        return _phone(text, default_region)
    return text


def _phone(text: str, default_region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
