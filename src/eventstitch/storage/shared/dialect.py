"""What differs between the backends' SQL where the statements are otherwise the same: how a
value is bound, how a list is matched and how a property is read. `sql` builds over it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eventstitch.storage.records import PropertyPath

Fragment = tuple[str, list[Any]]
"""A piece of SQL and the values bound in it, in order."""


@dataclass(frozen=True, slots=True)
class Dialect:
    mark: str
    """The placeholder: `?` or `%s`."""
    percent: str
    """A literal % in the statement's text: `%`, or `%%` where `%s` is the placeholder."""
    true: str
    """A true flag as a literal."""
    text: Callable[[str], str]
    """A string as the database can hold it."""
    flag: Callable[[bool], Any]
    """A bool as bound."""
    json: Callable[[Any], str]
    """A JSON value as bound text."""
    in_list: Callable[[str, Sequence[str]], Fragment]
    """`column` equal to one of the values."""
    property_match: Callable[[PropertyPath, str], Fragment]
    """A property equal to a query-string value (see `query_plan.as_number`)."""
    property_value: Callable[[PropertyPath], Fragment]
    """The JSON value at a path without `[*]` (missing and JSON null alike as SQL NULL), to group
    or count by."""
    property_values: Callable[[PropertyPath, str], Fragment]
    """A join (` JOIN ...`) after `FROM events`, whose `<alias>.value` is each distinct value at a
    path with `[*]` one event holds, or one NULL when it holds none."""
    converted_kind: str
    """The identifier kind in `converted_by` ("email:a@a.com" gives "email")."""

    def json_or_null(self, value: Any) -> str | None:
        return None if value is None else self.json(value)
