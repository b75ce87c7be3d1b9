"""What the sources API takes and shows of a source's shaping (docs/api.md, "Shaping")."""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from eventstitch.errors import clip
from eventstitch.sources import presets
from eventstitch.storage.records import Shaping

PAYLOAD_PATH_PATTERN = r"^[^.\s]{1,128}(\.[^.\s]{1,128}){0,15}$"
PayloadPath = Annotated[
    str, Field(pattern=PAYLOAD_PATH_PATTERN, description="Dotted path, e.g. customer.email")
]
HEADER_PREFIX = "header:"
MAX_REDACT_PATHS = 50
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
_PAYLOAD_PATH = re.compile(PAYLOAD_PATH_PATTERN)


def _header_or_path(value: str) -> str:
    """`header:<Name>` (a request header) or a dotted payload path."""
    if value.startswith(HEADER_PREFIX):
        if not _HEADER_NAME.match(value[len(HEADER_PREFIX) :]):
            raise ValueError("after 'header:' a header name is expected (at most 64 characters)")
        return value
    if not _PAYLOAD_PATH.match(value):
        raise ValueError(
            "expected 'header:<Name>' or a dotted payload path (at most 16 segments of 128)"
        )
    return value


HeaderOrPath = Annotated[
    str,
    AfterValidator(_header_or_path),
    Field(description="`header:X-GitHub-Event`, or a dotted payload path such as `type`."),
]


class ShapingIn(BaseModel):
    """How a webhook source's deliveries become events; see docs/api.md."""

    model_config = ConfigDict(extra="forbid")

    event_type_from: HeaderOrPath | None = Field(
        None, description="Where the event type is; the path's type when absent there."
    )
    split: str | None = Field(
        None,
        description="`$`: one event per element of a body that is an array; a payload path: "
        "one per element of the array there, the delivery's other fields under `_delivery`.",
    )
    delivery_id_from: HeaderOrPath | None = Field(
        None, description="Where the sender's delivery id is (per element when split)."
    )
    redact: list[PayloadPath] = Field(
        default_factory=list,
        max_length=MAX_REDACT_PATHS,
        description="Payload paths removed from every event before anything is stored.",
    )
    form_json_field: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="A form body's field that holds the JSON delivery (GitHub: `payload`).",
    )
    bracket_keys: bool = Field(False, description="Form keys `a[b][c]` become nested objects.")

    @model_validator(mode="after")
    def _split_is_a_path(self) -> ShapingIn:
        if self.split is not None and self.split != "$" and not _PAYLOAD_PATH.match(self.split):
            raise ValueError("split: expected '$' or a dotted payload path")
        return self

    def record(self) -> Shaping:
        return Shaping(
            event_type_from=self.event_type_from,
            split=self.split,
            delivery_id_from=self.delivery_id_from,
            redact=tuple(self.redact),
            form_json_field=self.form_json_field,
            bracket_keys=self.bracket_keys,
        )

    @classmethod
    def of(cls, shaping: Shaping) -> ShapingIn:
        return cls(
            event_type_from=shaping.event_type_from,
            split=shaping.split,
            delivery_id_from=shaping.delivery_id_from,
            redact=list(shaping.redact),
            form_json_field=shaping.form_json_field,
            bracket_keys=shaping.bracket_keys,
        )


def checked_shaping(shaping: Shaping) -> Shaping:
    """A shaping read from elsewhere (an import) held to what the API accepts; ValueError if
    not."""
    if shaping.preset is not None and shaping.preset not in presets.PRESETS:
        raise ValueError(f"preset {clip(shaping.preset, 40)!r} is not known")
    checked = ShapingIn.model_validate(ShapingIn.of(shaping).model_dump()).record()
    return dataclasses.replace(checked, preset=shaping.preset)
