"""Records that are values: frozen to the type checker, plainly slotted at run time.

A frozen dataclass's `__init__` sets each field through `object.__setattr__`, about 0.1 µs a
field: an event's record alone cost 1.6 µs to build, against 0.55 µs slotted and unfrozen, and
the ingest path builds several records per request (docs/benchmarks.md, "The ingest path, per
request"). The records made per request take this decorator instead; mypy still refuses any
assignment to their fields in `src` (the files it checks), so they stay values in the code.
Only records that are never hashed take it (each holds a dict or a list, so hashing one failed
anyway): an unfrozen dataclass is not hashable, though mypy, seeing it frozen, would allow it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def frozen_record(cls: type[T]) -> type[T]:
    """A dataclass with slots whose fields nothing assigns after `__init__` (checked by mypy,
    not at run time; see the module's docstring)."""
    return dataclass(slots=True)(cls)
