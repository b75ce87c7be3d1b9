"""How each setting's text is read: the `Setting` record, the parsers, and the bounds that
other modules check against too (rate limits, the write-key grace)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PREFIX = "EVENTSTITCH_"


@dataclass(frozen=True)
class Setting:
    """One environment setting: its name without the prefix, how to read it, and why it exists."""

    name: str
    parse: Callable[[str], Any]
    default: str
    help: str

    @property
    def env_name(self) -> str:
        return PREFIX + self.name.upper()


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


MIN_RATE_PER_SECOND = 0.001
"""The slowest rate limit a source may have (one request in 1000 s); 0 means no limit."""
MAX_RATE_PER_SECOND = 1_000_000.0
MAX_RATE_BURST = 1_000_000
MAX_RETRY_AFTER_SECONDS = 3600
"""The longest Retry-After a 429 names: a client is never told to go away for longer."""


def rate_problem(per_second: float) -> str | None:
    """Why a rate limit cannot be used, or None: a tiny rate would ask clients to wait for
    ages (and overflows the arithmetic), so it is 0 (no limit) or within the bounds."""
    if per_second == 0 or MIN_RATE_PER_SECOND <= per_second <= MAX_RATE_PER_SECOND:
        return None
    return f"must be 0 (no limit) or between {MIN_RATE_PER_SECOND:g} and {MAX_RATE_PER_SECOND:.0f}"


def _rate_per_second(raw: str) -> float:
    value = float(raw)
    problem = rate_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _rate_burst(raw: str) -> int:
    value = _non_negative_int(raw)
    if value > MAX_RATE_BURST:
        raise ValueError(f"must be at most {MAX_RATE_BURST}")
    return value


def _batch_size(raw: str) -> int:
    value = _positive_int(raw)
    # A batch is one statement: up to 12 bound values per event (linked inserts), and SQLite
    # as commonly built allows 32766 per statement.
    if value > 2700:
        raise ValueError("must be at most 2700")
    return value


def _split_events(raw: str) -> int:
    value = _positive_int(raw)
    if value > 2700:  # a split delivery is committed in one batch, bounded like `batch_size`
        raise ValueError("must be at most 2700")
    return value


def _nesting_depth(raw: str) -> int:
    value = _positive_int(raw)
    if value > 200:  # orjson writes at most 254 levels; stay well inside what can be stored
        raise ValueError("must be at most 200")
    return value


MAX_WRITE_KEY_GRACE_SECONDS = 30 * 86400
"""The longest a rotated write key stays valid: a forgotten old key must expire."""


def _grace_seconds(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= MAX_WRITE_KEY_GRACE_SECONDS:
        raise ValueError(f"must be between 0 and {MAX_WRITE_KEY_GRACE_SECONDS}")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")
    return value


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def _text(raw: str) -> str:
    return raw.strip()


def _names(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise ValueError("must be true or false")
    return value in ("true", "1", "yes", "on")


def _region(raw: str) -> str:
    value = raw.strip().upper()
    if value and not (len(value) == 2 and value.isalpha()):
        raise ValueError("must be a two-letter region code such as US or DE, or empty")
    return value
