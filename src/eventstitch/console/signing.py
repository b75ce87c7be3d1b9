"""The source page's signing and rate-limit forms: the API's `signature` and `rate_limit`
objects, checked by the same model as `PATCH /api/sources/{id}`."""

from __future__ import annotations

from typing import Any, get_args

from pydantic import ValidationError

from eventstitch.console.service import FormError, validation_message
from eventstitch.context import AppContext
from eventstitch.errors import EventstitchError
from eventstitch.sources import service as sources_service
from eventstitch.sources.schemas import Preset, SignatureOut, SourcePatch

PRESETS: tuple[str, ...] = get_args(Preset)
OPTION_FIELDS = ("header", "algorithm", "encoding", "prefix", "tolerance_seconds", "url")
"""The signature's optional fields, sent only when filled in (each preset takes some)."""


async def get_settings(*, ctx: AppContext, source_id: str) -> dict[str, Any]:
    """A source's signing rule as the API shows it (hints, never secrets) and its rate limit."""
    source = await sources_service.get(ctx=ctx, source_id=source_id)
    limit = source.rate_limit
    return {
        "signature": SignatureOut.of(source.signature).model_dump() if source.signature else None,
        "rate_limit": {"per_second": limit.per_second, "burst": limit.burst} if limit else None,
    }


def _signature(form: dict[str, str]) -> dict[str, Any] | None:
    """The signature object from the form: secrets one a line (two while rotating)."""
    if form.get("remove"):
        return None
    body: dict[str, Any] = {
        "preset": form.get("preset", ""),
        "secrets": [line.strip() for line in form.get("secrets", "").splitlines() if line.strip()],
    }
    for name in OPTION_FIELDS:
        value = form.get(name, "").strip()
        if value:
            body[name] = value
    return body


def _rate_limit(form: dict[str, str]) -> dict[str, Any] | None:
    """The rate_limit object from the form; an empty rate: the settings' default."""
    per_second = form.get("per_second", "").strip()
    if not per_second:
        return None
    return {"per_second": per_second, "burst": form.get("burst", "").strip() or 0}


async def _patch(ctx: AppContext, source_id: str, fields: dict[str, Any]) -> None:
    try:
        patch = SourcePatch.model_validate(fields)
        await sources_service.update(ctx=ctx, source_id=source_id, patch=patch)
    except ValidationError as exc:
        raise FormError(validation_message(exc)) from None
    except EventstitchError as exc:
        raise FormError(exc.message) from None


async def update_signature(*, ctx: AppContext, source_id: str, form: dict[str, str]) -> None:
    """Replace (or remove) the signing rule; FormError with the API's message, nothing changed."""
    await _patch(ctx, source_id, {"signature": _signature(form)})


async def update_rate_limit(*, ctx: AppContext, source_id: str, form: dict[str, str]) -> None:
    """Replace the rate limit, or go back to the default; FormError with the API's message."""
    await _patch(ctx, source_id, {"rate_limit": _rate_limit(form)})
