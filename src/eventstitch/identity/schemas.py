"""What goes in and out of the profiles API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from eventstitch.ids import ms_to_iso
from eventstitch.storage.records import MergeRecord, ProfileRecord


class IdentifierOut(BaseModel):
    kind: str
    value: str


class MergeOut(BaseModel):
    survivor: str
    merged: str
    event_id: str | None
    at: str
    refused: bool = Field(description="A guard kept the two apart.")
    kind: str | None = Field(description="The single-valued kind that refused the merge.")


class ProfileOut(BaseModel):
    id: str
    created_at: str
    updated_at: str
    traits: dict[str, Any]
    identifiers: list[IdentifierOut]
    merged_into: str | None
    merges: list[MergeOut] = Field(default_factory=list)


class ProfileList(BaseModel):
    profiles: list[ProfileOut]


class ErasureOut(BaseModel):
    ok: bool
    profile_id: str
    profiles_removed: int
    events_removed: int


def merge_json(merge: MergeRecord) -> dict[str, Any]:
    return {
        "survivor": merge.survivor,
        "merged": merge.merged,
        "event_id": merge.event_id,
        "at": ms_to_iso(merge.at_ms),
        "refused": merge.refused_kind is not None,
        "kind": merge.refused_kind,
    }


def profile_json(profile: ProfileRecord, merges: list[MergeRecord] | None = None) -> dict[str, Any]:
    """A profile as the API renders it."""
    return {
        "id": profile.id,
        "created_at": ms_to_iso(profile.created_ms),
        "updated_at": ms_to_iso(profile.updated_ms),
        "traits": profile.traits,
        "identifiers": [{"kind": k, "value": v} for k, v in profile.identifiers],
        "merged_into": profile.merged_into,
        "merges": [merge_json(m) for m in merges or []],
    }
