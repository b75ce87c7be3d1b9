"""What goes in and out of the sources API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from eventstitch.ids import ms_to_iso
from eventstitch.storage.interfaces import IdentificationRule, SourceRecord

SOURCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
PAYLOAD_PATH_PATTERN = r"^[^.\s]{1,128}(\.[^.\s]{1,128}){0,15}$"
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"

SourceId = Annotated[str, Field(pattern=SOURCE_ID_PATTERN, description="Letters, digits, . _ -")]
Tag = Annotated[str, Field(min_length=1, max_length=64)]
CreatableKind = Literal["webhook", "tracker"]
PayloadPath = Annotated[
    str, Field(pattern=PAYLOAD_PATH_PATTERN, description="Dotted path, e.g. customer.email")
]
EventTypeName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._:-]{0,127}$")]
TraitName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]


class IdentificationRuleIn(BaseModel):
    """Where this source's payloads carry an identifier, and what to do with it."""

    model_config = ConfigDict(extra="forbid")

    path: PayloadPath
    kind: str = Field(pattern=KIND_PATTERN, description="email, phone, user_id, or your own")
    create_profile: bool = Field(False, description="Create a profile when nobody owns it.")
    event_types: list[EventTypeName] = Field(
        default_factory=list, max_length=100, description="Only these event types; empty: all."
    )

    def record(self) -> IdentificationRule:
        return IdentificationRule(
            path=tuple(self.path.split(".")),
            kind=self.kind,
            create_profile=self.create_profile,
            event_types=tuple(self.event_types),
        )


def rules_out(rules: tuple[IdentificationRule, ...]) -> list[IdentificationRuleIn]:
    return [
        IdentificationRuleIn(
            path=".".join(r.path),
            kind=r.kind,
            create_profile=r.create_profile,
            event_types=list(r.event_types),
        )
        for r in rules
    ]


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: SourceId | None = Field(None, description="Given by you, or generated when left out.")
    name: str = Field(min_length=1, max_length=200)
    kind: CreatableKind = "webhook"
    enabled: bool = True
    description: str = Field("", max_length=2000)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    identification: list[IdentificationRuleIn] = Field(default_factory=list, max_length=50)
    traits: dict[TraitName, PayloadPath] = Field(
        default_factory=dict, description="Profile trait name to payload path."
    )
    delivery_id_path: PayloadPath | None = Field(
        None, description="Payload path of the sender's delivery id (Stripe: `id`)."
    )


class SourcePatch(BaseModel):
    """Only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    kind: CreatableKind | None = None
    enabled: bool | None = None
    description: str | None = Field(None, max_length=2000)
    tags: list[Tag] | None = Field(None, max_length=50)
    identification: list[IdentificationRuleIn] | None = Field(None, max_length=50)
    traits: dict[TraitName, PayloadPath] | None = None
    delivery_id_path: PayloadPath | None = Field(None, description="null clears it.")


class SourceOut(BaseModel):
    id: str
    name: str
    kind: str
    enabled: bool
    description: str
    tags: list[str]
    identification: list[IdentificationRuleIn]
    traits: dict[str, str]
    delivery_id_path: str | None
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, source: SourceRecord) -> SourceOut:
        return cls(
            id=source.id,
            name=source.name,
            kind=source.kind,
            enabled=source.enabled,
            description=source.description,
            tags=list(source.tags),
            identification=rules_out(source.identification),
            traits={name: ".".join(path) for name, path in source.traits.items()},
            delivery_id_path=".".join(source.delivery_id_path) or None,
            created_at=ms_to_iso(source.created_ms),
            updated_at=ms_to_iso(source.updated_ms),
        )


class SourceList(BaseModel):
    sources: list[SourceOut]
