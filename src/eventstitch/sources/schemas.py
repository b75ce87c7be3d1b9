"""What goes in and out of the sources API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from eventstitch.ids import ms_to_iso
from eventstitch.storage.interfaces import SourceRecord

SOURCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

SourceId = Annotated[str, Field(pattern=SOURCE_ID_PATTERN, description="Letters, digits, . _ -")]
Tag = Annotated[str, Field(min_length=1, max_length=64)]
CreatableKind = Literal["webhook", "tracker"]


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: SourceId | None = Field(None, description="Given by you, or generated when left out.")
    name: str = Field(min_length=1, max_length=200)
    kind: CreatableKind = "webhook"
    enabled: bool = True
    description: str = Field("", max_length=2000)
    tags: list[Tag] = Field(default_factory=list, max_length=50)


class SourcePatch(BaseModel):
    """Only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    kind: CreatableKind | None = None
    enabled: bool | None = None
    description: str | None = Field(None, max_length=2000)
    tags: list[Tag] | None = Field(None, max_length=50)


class SourceOut(BaseModel):
    id: str
    name: str
    kind: str
    enabled: bool
    description: str
    tags: list[str]
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
            created_at=ms_to_iso(source.created_ms),
            updated_at=ms_to_iso(source.updated_ms),
        )


class SourceList(BaseModel):
    sources: list[SourceOut]
