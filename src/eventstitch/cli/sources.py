"""`eventstitch sources`: the same source management as `/api/sources`."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson
from pydantic import ValidationError

from eventstitch.cli.runtime import emit_json, emit_table, json_option, run
from eventstitch.context import AppContext
from eventstitch.sources import presets, service, signatures
from eventstitch.sources.schemas import SourceCreate, SourceOut, SourcePatch
from eventstitch.storage.records import SourceRecord


def _show(source: SourceRecord, as_json: bool) -> None:
    out = SourceOut.of(source).model_dump()
    if as_json:
        emit_json(out)
    else:
        emit_table(["field", "value"], [[k, v] for k, v in out.items()])


@click.group()
def sources() -> None:
    """Event sources: where events may come from."""


@sources.command("add")
@click.option("--name", default=None, help="A name people recognise (with --preset: the sender's).")
@click.option("--id", "source_id", default=None, help="Your own id; generated when left out.")
@click.option(
    "--kind", type=click.Choice(["webhook", "tracker"]), default="webhook", show_default=True
)
@click.option("--description", default="")
@click.option("--tag", "tags", multiple=True, help="Repeat for several tags.")
@click.option("--disabled", is_flag=True, help="Create it disabled.")
@click.option(
    "--preset",
    type=click.Choice(presets.NAMES),
    default=None,
    help="A sender (docs/senders.md): its shaping, signature scheme, redactions and rules.",
)
@click.option("--secret", "secrets", multiple=True, help="With --preset: the signing secret.")
@click.option(
    "--secrets-from-stdin",
    is_flag=True,
    help="Read the secrets from standard input, one a line (keeps them out of shell history).",
)
@click.option("--unsigned", is_flag=True, help="With --preset: take unsigned deliveries.")
@click.option("--signature-url", default=None, help="twilio: the public URL given to Twilio.")
@json_option
def add(
    name: str | None,
    source_id: str | None,
    kind: str,
    description: str,
    tags: tuple[str, ...],
    disabled: bool,
    preset: str | None,
    secrets: tuple[str, ...],
    secrets_from_stdin: bool,
    unsigned: bool,
    signature_url: str | None,
    as_json: bool,
) -> None:
    """Create a source (also `sources create`)."""
    fields: dict[str, Any] = {
        "id": source_id,
        "kind": kind,
        "enabled": not disabled,
        "description": description,
        "tags": list(tags),
    }
    if name is not None:
        fields["name"] = name
    given = list(secrets)
    if secrets_from_stdin:
        given += [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
    if preset is not None:
        fields["preset"] = preset
        if unsigned:
            fields["signature"] = None
        elif given:
            url = {"url": signature_url} if signature_url else {}
            fields["signature"] = {"secrets": given, **url}
    elif given or unsigned or signature_url:
        raise click.UsageError("--secret, --unsigned and --signature-url go with --preset")
    try:
        source_in = SourceCreate.model_validate(fields)
    except ValidationError as exc:
        raise click.BadParameter(_problems(exc)) from None

    async def call(ctx: AppContext) -> SourceRecord:
        return await service.create(ctx=ctx, source_in=source_in)

    _show(run(call), as_json)


sources.add_command(add, "create")


def _problems(exc: ValidationError) -> str:
    """A refusal's problems, without the input values: a refused secret must not be echoed."""
    problems = exc.errors(include_input=False, include_url=False)
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'source'}: {e['msg']}" for e in problems
    )


@sources.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List every source."""

    async def call(ctx: AppContext) -> list[SourceRecord]:
        found: list[SourceRecord] = []
        cursor: str | None = None
        while True:  # ends: each page moves strictly forward through a finite table
            page, cursor = await service.list_page(
                ctx=ctx, limit=ctx.config.sources_max_limit, cursor=cursor
            )
            found += page
            if cursor is None:
                return found

    found = run(call)
    if as_json:
        emit_json({"sources": [SourceOut.of(s).model_dump() for s in found]})
        return
    emit_table(
        ["id", "name", "kind", "enabled", "tags", "created"],
        [
            [
                s.id,
                s.name,
                s.kind,
                "yes" if s.enabled else "no",
                ", ".join(s.tags),
                SourceOut.of(s).created_at,
            ]
            for s in found
        ],
    )


@sources.command()
@click.argument("source_id")
@json_option
def show(source_id: str, as_json: bool) -> None:
    """Show one source."""

    async def call(ctx: AppContext) -> SourceRecord:
        return await service.get(ctx=ctx, source_id=source_id)

    _show(run(call), as_json)


def _update(source_id: str, changes: dict[str, Any], as_json: bool) -> None:
    try:
        patch = SourcePatch.model_validate(changes)
    except ValidationError as exc:
        raise click.BadParameter(_problems(exc)) from None

    async def call(ctx: AppContext) -> SourceRecord:
        return await service.update(ctx=ctx, source_id=source_id, patch=patch)

    _show(run(call), as_json)


@sources.command()
@click.argument("source_id")
@click.option("--path", required=True, help="Payload path, e.g. customer.email.")
@click.option("--kind", required=True, help="email, phone, user_id, or a kind you name.")
@click.option("--create-profile", is_flag=True, help="Create a profile when nobody owns it.")
@click.option("--event-type", "event_types", multiple=True, help="Only these types; repeatable.")
@json_option
def identify(
    source_id: str,
    path: str,
    kind: str,
    create_profile: bool,
    event_types: tuple[str, ...],
    as_json: bool,
) -> None:
    """Add an identification rule to a source (PATCH identification, appending)."""

    async def current(ctx: AppContext) -> SourceRecord:
        return await service.get(ctx=ctx, source_id=source_id)

    rules = [r.model_dump() for r in SourceOut.of(run(current)).identification]
    rules.append(
        {
            "path": path,
            "kind": kind,
            "create_profile": create_profile,
            "event_types": list(event_types),
        }
    )
    _update(source_id, {"identification": rules}, as_json)


@sources.command("set-rules")
@click.argument("source_id")
@click.argument("rules_file", type=click.File("rb"))
@json_option
def set_rules(source_id: str, rules_file: Any, as_json: bool) -> None:
    """Replace identification rules and traits from JSON:
    {"identification": [...], "traits": {...}} (either key may be left out)."""
    try:
        data = orjson.loads(rules_file.read())
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not set(data) <= {"identification", "traits"}:
        raise click.BadParameter('expected {"identification": [...], "traits": {...}}')
    _update(source_id, data, as_json)


@sources.command()
@click.argument("source_id")
@json_option
def enable(source_id: str, as_json: bool) -> None:
    """Let a source accept events again."""
    _update(source_id, {"enabled": True}, as_json)


@sources.command("rotate-key")
@click.argument("source_id")
@click.option(
    "--grace-seconds",
    type=int,
    default=None,
    help="How long the previous key still works; EVENTSTITCH_WRITE_KEY_GRACE_SECONDS if left out.",
)
@json_option
def rotate_key(source_id: str, grace_seconds: int | None, as_json: bool) -> None:
    """Give a tracker source a new write key (the old one works for a grace period)."""

    async def call(ctx: AppContext) -> SourceRecord:
        return await service.rotate_key(ctx=ctx, source_id=source_id, grace_seconds=grace_seconds)

    _show(run(call), as_json)


@sources.command()
@click.argument("source_id")
@json_option
def disable(source_id: str, as_json: bool) -> None:
    """Stop a source from accepting events (effective at once in every worker)."""
    _update(source_id, {"enabled": False}, as_json)


@sources.command()
@click.argument("source_id")
@click.option(
    "--preset",
    required=True,
    type=click.Choice(signatures.PRESETS),
)
@click.option("--secret", "secrets", multiple=True, help="Repeat for a second one while rotating.")
@click.option(
    "--secrets-from-stdin",
    is_flag=True,
    help="Read the secrets from standard input, one a line (keeps them out of shell history).",
)
@click.option("--header", default=None, help="hmac: the signature header; token: its header.")
@click.option("--algorithm", type=click.Choice(["sha1", "sha256", "sha512"]), default=None)
@click.option("--encoding", type=click.Choice(["hex", "base64"]), default=None)
@click.option("--prefix", default=None, help="hmac: text before the signature, e.g. sha256=.")
@click.option("--tolerance", "tolerance_seconds", type=int, default=None, help="Seconds.")
@click.option("--url", default=None, help="twilio: the public URL given to Twilio.")
@json_option
def sign(
    source_id: str,
    preset: str,
    secrets: tuple[str, ...],
    secrets_from_stdin: bool,
    header: str | None,
    algorithm: str | None,
    encoding: str | None,
    prefix: str | None,
    tolerance_seconds: int | None,
    url: str | None,
    as_json: bool,
) -> None:
    """Require signed deliveries on a webhook source (replaces its signature rule)."""
    given = list(secrets)
    if secrets_from_stdin:
        stdin = sys.stdin.read()
        given += [line.strip() for line in stdin.splitlines() if line.strip()]
    options = {
        "header": header,
        "algorithm": algorithm,
        "encoding": encoding,
        "prefix": prefix,
        "tolerance_seconds": tolerance_seconds,
        "url": url,
    }
    rule = {"preset": preset, "secrets": given, **{k: v for k, v in options.items() if v}}
    _update(source_id, {"signature": rule}, as_json)


@sources.command()
@click.argument("source_id")
@json_option
def unsign(source_id: str, as_json: bool) -> None:
    """Stop requiring signatures on a source."""
    _update(source_id, {"signature": None}, as_json)


@sources.command()
@click.argument("source_id")
@click.option("--per-second", type=float, default=None, help="Requests per second.")
@click.option("--burst", type=int, default=0, help="Requests at once; 0: the rate rounded up.")
@click.option("--unlimited", is_flag=True, help="No limit for this source, whatever the default.")
@click.option("--default", "use_default", is_flag=True, help="Use the default of the settings.")
@json_option
def limit(
    source_id: str,
    per_second: float | None,
    burst: int,
    unlimited: bool,
    use_default: bool,
    as_json: bool,
) -> None:
    """Set a source's own rate limit (PATCH rate_limit)."""
    if sum([per_second is not None, unlimited, use_default]) != 1:
        raise click.UsageError("give one of --per-second, --unlimited or --default")
    rate_limit: dict[str, Any] | None
    if use_default:
        rate_limit = None
    elif unlimited:
        rate_limit = {"per_second": 0}
    else:
        rate_limit = {"per_second": per_second, "burst": burst}
    _update(source_id, {"rate_limit": rate_limit}, as_json)


@sources.command()
@click.argument("source_id")
@click.option("--event-type-from", default=None, help="header:<Name> or a payload path.")
@click.option("--split", default=None, help="$ (the body is an array) or an array's path.")
@click.option("--delivery-id-from", default=None, help="header:<Name> or a payload path.")
@click.option("--redact", "redact", multiple=True, help="Payload path to remove; repeatable.")
@click.option("--form-json-field", default=None, help="Form field holding the JSON delivery.")
@click.option("--bracket-keys", is_flag=True, help="Form keys a[b][c] become nested objects.")
@click.option("--clear", is_flag=True, help="Remove the shaping: store deliveries as they come.")
@json_option
def shape(
    source_id: str,
    event_type_from: str | None,
    split: str | None,
    delivery_id_from: str | None,
    redact: tuple[str, ...],
    form_json_field: str | None,
    bracket_keys: bool,
    clear: bool,
    as_json: bool,
) -> None:
    """Set how a webhook source's deliveries become events (PATCH shaping; replaces it)."""
    shaping: dict[str, Any] | None = None
    if not clear:
        shaping = {
            "event_type_from": event_type_from,
            "split": split,
            "delivery_id_from": delivery_id_from,
            "redact": list(redact),
            "form_json_field": form_json_field,
            "bracket_keys": bracket_keys,
        }
    _update(source_id, {"shaping": shaping}, as_json)


@sources.command()
@click.argument("source_id")
def remove(source_id: str) -> None:
    """Remove a source; the events it collected stay."""

    async def call(ctx: AppContext) -> None:
        await service.delete(ctx=ctx, source_id=source_id)

    run(call)
    click.echo(f"removed source {source_id}")
