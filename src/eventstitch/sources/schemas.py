"""What goes in and out of the sources API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from eventstitch import paths
from eventstitch.config import MAX_RATE_BURST, MAX_RATE_PER_SECOND, rate_problem
from eventstitch.ids import ms_to_iso
from eventstitch.ingest.parsing import EVENT_TYPE_REGEX, MAX_EVENT_TYPE
from eventstitch.sources import presets, signatures
from eventstitch.sources.presets import SenderPresetName
from eventstitch.sources.shaping_schemas import (
    PayloadPath,
    ShapingIn,
)
from eventstitch.storage.records import (
    IdentificationRule,
    RateLimit,
    SignatureRule,
    SourceRecord,
)

SOURCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"

SourceId = Annotated[str, Field(pattern=SOURCE_ID_PATTERN, description="Letters, digits, . _ -")]
Tag = Annotated[str, Field(min_length=1, max_length=64)]
CreatableKind = Literal["webhook", "tracker"]


def _rule_path(value: str) -> str:
    """A rule path as docs/identity.md writes it, in its canonical form."""
    try:
        return paths.label(paths.parse_rule(value))
    except paths.PathError as error:
        raise ValueError(
            f"{error}: expected a payload path such as customer.email, items.0.sku or "
            f"recipients[*].email (at most {paths.RULE_MAX_KEYS} keys"
            f" of {paths.RULE_MAX_KEY_CHARS} characters)"
        ) from None


RulePath = Annotated[
    str,
    AfterValidator(_rule_path),
    Field(
        min_length=1,
        max_length=4096,
        description="Payload path: customer.email, items.0.sku (an index), items[*].email "
        "(any element); a key with a dot as a JSON string.",
    ),
]
EventTypeName = Annotated[str, Field(pattern=EVENT_TYPE_REGEX, max_length=MAX_EVENT_TYPE)]
TraitName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]


class IdentificationRuleIn(BaseModel):
    """Where this source's payloads carry an identifier, and what to do with it."""

    model_config = ConfigDict(extra="forbid")

    path: RulePath
    kind: str = Field(pattern=KIND_PATTERN, description="email, phone, user_id, or your own")
    create_profile: bool = Field(False, description="Create a profile when nobody owns it.")
    event_types: list[EventTypeName] = Field(
        default_factory=list, max_length=100, description="Only these event types; empty: all."
    )

    def record(self) -> IdentificationRule:
        return IdentificationRule(
            path=paths.parse_rule(self.path),
            kind=self.kind,
            create_profile=self.create_profile,
            event_types=tuple(self.event_types),
        )


def rules_out(rules: tuple[IdentificationRule, ...]) -> list[IdentificationRuleIn]:
    return [
        IdentificationRuleIn(
            path=paths.label(r.path),
            kind=r.kind,
            create_profile=r.create_profile,
            event_types=list(r.event_types),
        )
        for r in rules
    ]


Secret = Annotated[
    str,
    Field(
        min_length=16,
        max_length=512,
        pattern=r"^[!-~]([ -~]*[!-~])?$",
        description="Printable ASCII, 16 to 512 characters, no space at either end.",
    ),
]
HeaderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")]
Preset = Literal[
    "github", "stripe", "shopify", "standard_webhooks", "slack", "zoom", "twilio", "hmac", "token"
]
_PRESET_OPTIONS = {
    "hmac": {"header", "algorithm", "encoding", "prefix"},
    "token": {"header"},
    "stripe": {"tolerance_seconds"},
    "standard_webhooks": {"tolerance_seconds"},
    "slack": {"tolerance_seconds"},
    "zoom": {"tolerance_seconds"},
    "twilio": {"url"},
}
PUBLIC_URL_PATTERN = r"^https?://[^\s?#]{1,2040}$"
SECRET_HINT_CHARS = 4


class SignatureIn(BaseModel):
    """How deliveries to a webhook source are signed; the secrets are never shown again."""

    model_config = ConfigDict(extra="forbid")

    preset: Preset
    secrets: list[Secret] = Field(
        min_length=1, max_length=2, description="One, or two while rotating: either verifies."
    )
    header: HeaderName | None = Field(
        None, description="hmac: required. token: defaults to X-Webhook-Token."
    )
    algorithm: Literal["sha1", "sha256", "sha512"] | None = Field(None, description="hmac only.")
    encoding: Literal["hex", "base64"] | None = Field(None, description="hmac only.")
    prefix: str | None = Field(
        None, max_length=32, pattern=r"^[!-~]*$", description="hmac only, e.g. sha256=."
    )
    tolerance_seconds: int | None = Field(
        None, ge=1, le=86400, description="stripe, standard_webhooks, slack, zoom: default 300."
    )
    url: str | None = Field(
        None,
        pattern=PUBLIC_URL_PATTERN,
        description="twilio: required; the public URL the sender is given (it signs it), "
        "without a query.",
    )

    @model_validator(mode="after")
    def _fits_preset(self) -> SignatureIn:
        given = {
            name
            for name in self.model_fields_set - {"preset", "secrets"}
            if getattr(self, name) is not None
        }
        stray = given - _PRESET_OPTIONS.get(self.preset, set())
        if stray:
            raise ValueError(f"{', '.join(sorted(stray))}: not an option of {self.preset}")
        if self.header is not None and self.header.lower() in signatures.HEADERS_EVENTSTITCH_READS:
            raise ValueError(
                f"header {self.header}: Eventstitch reads it for itself, so it cannot carry "
                "the secret; choose another name"
            )
        if self.preset == "hmac" and self.header is None:
            raise ValueError("the hmac preset needs the header that carries the signature")
        if self.preset == "twilio" and self.url is None:
            raise ValueError(
                "the twilio preset needs url: the public URL given to Twilio, which it signs"
            )
        if self.preset == "standard_webhooks":
            for secret in self.secrets:
                signatures.standard_webhooks_key(secret)
        return self

    def record(self) -> SignatureRule:
        return SignatureRule(
            preset=self.preset,
            secrets=tuple(self.secrets),
            header=(self.header or "").lower(),
            algorithm=self.algorithm or "sha256",
            encoding=self.encoding or "hex",
            prefix=self.prefix or "",
            tolerance_seconds=self.tolerance_seconds or 300,
            url=self.url or "",
        )


def checked_signature(rule: SignatureRule) -> SignatureRule:
    """A rule read from elsewhere (an import) held to what the API accepts; ValueError (a
    pydantic ValidationError) if it would not be."""
    options = _PRESET_OPTIONS.get(rule.preset, set())
    given: dict[str, Any] = {
        "header": rule.header or None,
        "algorithm": rule.algorithm,
        "encoding": rule.encoding,
        "prefix": rule.prefix or None,
        "tolerance_seconds": rule.tolerance_seconds,
        "url": rule.url or None,
    }
    return SignatureIn.model_validate(
        {
            "preset": rule.preset,
            "secrets": list(rule.secrets),
            **{name: value for name, value in given.items() if name in options},
        }
    ).record()


def checked_rate_limit(limit: RateLimit) -> RateLimit:
    """A limit read from elsewhere held to what the API accepts; ValueError if not."""
    return RateLimitIn.model_validate(
        {"per_second": limit.per_second, "burst": limit.burst}
    ).record()


class SignatureOut(BaseModel):
    """A source's signature rule as shown: a hint of each secret, never the secret."""

    preset: str
    header: str
    algorithm: str | None
    encoding: str | None
    prefix: str | None
    tolerance_seconds: int | None
    url: str | None = None
    secret_count: int
    secret_hints: list[str] = Field(description="The last characters of each secret.")

    @classmethod
    def of(cls, rule: SignatureRule) -> SignatureOut:
        options = _PRESET_OPTIONS.get(rule.preset, set())
        hmac = rule.preset == "hmac"
        return cls(
            preset=rule.preset,
            header=signatures.signature_header(rule),
            algorithm=rule.algorithm if hmac else None,
            encoding=rule.encoding if hmac else None,
            prefix=rule.prefix if hmac else None,
            tolerance_seconds=rule.tolerance_seconds if "tolerance_seconds" in options else None,
            url=rule.url or None,
            secret_count=len(rule.secrets),
            secret_hints=["..." + s[-SECRET_HINT_CHARS:] for s in rule.secrets],
        )


class RateLimitIn(BaseModel):
    """A source's own rate limit, in requests per second."""

    model_config = ConfigDict(extra="forbid")

    per_second: float = Field(
        ge=0,
        le=MAX_RATE_PER_SECOND,
        allow_inf_nan=False,
        description="0: unlimited; else 0.001 to 1000000.",
    )
    burst: int = Field(
        0, ge=0, le=MAX_RATE_BURST, description="Requests at once; 0: the rate rounded up."
    )

    @field_validator("per_second")
    @classmethod
    def _usable_rate(cls, value: float) -> float:
        problem = rate_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    def record(self) -> RateLimit:
        return RateLimit(per_second=self.per_second, burst=self.burst)


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preset: SenderPresetName | None = Field(
        None,
        description="A sender (docs/senders.md) whose shaping, signature scheme, redactions, "
        "identification and traits fill what this request leaves out.",
    )
    id: SourceId | None = Field(None, description="Given by you, or generated when left out.")
    name: str = Field(min_length=1, max_length=200)
    kind: CreatableKind = "webhook"
    enabled: bool = True
    description: str = Field("", max_length=2000)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    identification: list[IdentificationRuleIn] = Field(default_factory=list, max_length=50)
    traits: dict[TraitName, RulePath] = Field(
        default_factory=dict, description="Profile trait name to payload path."
    )
    delivery_id_path: PayloadPath | None = Field(
        None, description="Payload path of the sender's delivery id (Stripe: `id`)."
    )
    signature: SignatureIn | None = Field(None, description="Webhook sources: require signing.")
    rate_limit: RateLimitIn | None = Field(None, description="None: the default of the settings.")
    shaping: ShapingIn | None = Field(None, description="Webhook sources: shape deliveries.")

    @model_validator(mode="before")
    @classmethod
    def _from_preset(cls, data: Any) -> Any:
        """Fill in the preset's fields that the request leaves out."""
        if isinstance(data, dict) and isinstance(data.get("preset"), str):
            return presets.expand(data["preset"], data)
        return data


class SourcePatch(BaseModel):
    """Only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    kind: CreatableKind | None = None
    enabled: bool | None = None
    description: str | None = Field(None, max_length=2000)
    tags: list[Tag] | None = Field(None, max_length=50)
    identification: list[IdentificationRuleIn] | None = Field(None, max_length=50)
    traits: dict[TraitName, RulePath] | None = None
    delivery_id_path: PayloadPath | None = Field(None, description="null clears it.")
    signature: SignatureIn | None = Field(None, description="Replaces the rule; null removes it.")
    rate_limit: RateLimitIn | None = Field(None, description="null: the default of the settings.")
    shaping: ShapingIn | None = Field(None, description="Replaces the shaping; null removes it.")


class SourceOut(BaseModel):
    id: str
    name: str
    kind: str
    preset: str | None = Field(None, description="The sender preset it was created from.")
    enabled: bool
    description: str
    tags: list[str]
    identification: list[IdentificationRuleIn]
    traits: dict[str, str]
    delivery_id_path: str | None
    signature: SignatureOut | None
    rate_limit: RateLimitIn | None
    shaping: ShapingIn | None
    write_key: str | None = Field(
        None, description="Tracker sources: the key the analytics SDKs send."
    )
    previous_write_key_valid_until: str | None = Field(
        None, description="After a rotation: until when the previous key still works."
    )
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, source: SourceRecord) -> SourceOut:
        return cls(
            id=source.id,
            name=source.name,
            kind=source.kind,
            preset=source.shaping.preset if source.shaping else None,
            enabled=source.enabled,
            description=source.description,
            tags=list(source.tags),
            identification=rules_out(source.identification),
            traits={name: paths.label(path) for name, path in source.traits.items()},
            delivery_id_path=".".join(source.delivery_id_path) or None,
            signature=SignatureOut.of(source.signature) if source.signature else None,
            rate_limit=RateLimitIn(
                per_second=source.rate_limit.per_second, burst=source.rate_limit.burst
            )
            if source.rate_limit
            else None,
            shaping=ShapingIn.of(source.shaping) if source.shaping else None,
            write_key=source.write_key,
            previous_write_key_valid_until=ms_to_iso(source.previous_key_until_ms)
            if source.previous_write_key and source.previous_key_until_ms
            else None,
            created_at=ms_to_iso(source.created_ms),
            updated_at=ms_to_iso(source.updated_ms),
        )


class KeyRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int | None = Field(
        None, description="How long the previous key still works; the setting when left out."
    )


class SourceList(BaseModel):
    sources: list[SourceOut]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )
