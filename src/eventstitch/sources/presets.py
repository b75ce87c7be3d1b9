"""Sender presets: what a known sender needs (shaping, signature scheme, redactions, suggested
identification rules and traits), as one table entry per sender rather than code per sender.

A source created with `"preset": "<name>"` starts from its entry; whatever the request gives
explicitly replaces the entry's value of that field (for `shaping` and `signature`, field by
field). docs/senders.md describes every entry for the people pasting URLs into senders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from eventstitch.paths import label
from eventstitch.storage.records import IdentificationRule, Shaping

SenderPresetName = Literal[
    "github",
    "stripe",
    "shopify",
    "sendgrid",
    "alertmanager",
    "sentry",
    "slack",
    "twilio",
    "mailchimp",
    "standard_webhooks",
    "zoom",
    "meta",
]
"""The presets' names, as the API's schema lists them (a test keeps it equal to the table)."""


@dataclass(frozen=True, slots=True)
class SenderPreset:
    """One sender: how its deliveries are read, signed and tied to people."""

    sender: str
    """The sender's name as people know it."""
    path_type: str
    """The event type to put in the URL; a preset reading the type elsewhere falls back to it."""
    signature: str | None
    """The signature scheme (sources/signatures.py) the user supplies the secret for; None:
    the sender cannot sign, and the source takes unsigned deliveries."""
    shaping: Shaping
    signature_options: Mapping[str, Any] = field(default_factory=dict)
    identification: tuple[IdentificationRule, ...] = ()
    traits: Mapping[str, str] = field(default_factory=dict)
    handshake: str | None = None
    """The sender's URL check answered for it (ingest/handshakes.py), if it makes one."""


def _rule(
    path: str, kind: str, *, create: bool = False, types: tuple[str, ...] = ()
) -> IdentificationRule:
    return IdentificationRule(
        path=tuple(path.split(".")), kind=kind, create_profile=create, event_types=types
    )


PRESETS: dict[str, SenderPreset] = {
    "github": SenderPreset(
        sender="GitHub",
        path_type="github",
        signature="github",
        shaping=Shaping(
            event_type_from="header:X-GitHub-Event",
            delivery_id_from="header:X-GitHub-Delivery",
            form_json_field="payload",  # GitHub's default content type is a form
            redact=("hook.config.secret",),
        ),
        identification=(_rule("pusher.email", "email", types=("push",)),),
        traits={"github_login": "sender.login"},
    ),
    "stripe": SenderPreset(
        sender="Stripe",
        path_type="stripe",
        signature="stripe",
        shaping=Shaping(
            event_type_from="type",
            delivery_id_from="id",
            # A PaymentIntent's or SetupIntent's client secret completes a payment.
            redact=("data.object.client_secret",),
        ),
        identification=(
            _rule("data.object.email", "email", create=True),
            _rule("data.object.customer_email", "email", create=True),
        ),
        traits={"name": "data.object.name"},
    ),
    "shopify": SenderPreset(
        sender="Shopify",
        path_type="shopify",
        signature="shopify",
        shaping=Shaping(
            event_type_from="header:X-Shopify-Topic",
            delivery_id_from="header:X-Shopify-Webhook-Id",
            # The order and cart tokens open the order status and checkout pages.
            redact=(
                "token",
                "cart_token",
                "checkout_token",
                "browser_ip",
                "client_details.browser_ip",
            ),
        ),
        identification=(_rule("email", "email", create=True),),
        traits={"first_name": "customer.first_name", "last_name": "customer.last_name"},
    ),
    "sendgrid": SenderPreset(
        sender="SendGrid",
        path_type="sendgrid",
        signature="token",  # its own signature is ECDSA, which is not checked here
        shaping=Shaping(
            event_type_from="event",
            split="$",
            delivery_id_from="sg_event_id",
            redact=("ip",),
        ),
        identification=(_rule("email", "email", create=True),),
    ),
    "alertmanager": SenderPreset(
        sender="Prometheus Alertmanager",
        path_type="alert",
        signature="token",
        shaping=Shaping(event_type_from="status", split="alerts"),
    ),
    "sentry": SenderPreset(
        sender="Sentry",
        path_type="sentry",
        signature="hmac",
        signature_options={"header": "Sentry-Hook-Signature", "algorithm": "sha256"},
        shaping=Shaping(
            event_type_from="header:Sentry-Hook-Resource",
            delivery_id_from="header:Request-ID",
            redact=(
                "data.event.user.ip_address",
                "data.event.request.cookies",
                "data.event.request.headers",
            ),
        ),
        identification=(_rule("data.event.user.email", "email"),),
    ),
    "slack": SenderPreset(
        sender="Slack",
        path_type="slack",
        signature="slack",
        shaping=Shaping(
            event_type_from="event.type",
            delivery_id_from="event_id",
            form_json_field="payload",  # interactivity posts payload=<json>
            redact=("token",),
        ),
        identification=(_rule("event.user", "slack_user"),),
        handshake="slack",
    ),
    "twilio": SenderPreset(
        sender="Twilio",
        path_type="sms-status",
        signature="twilio",
        shaping=Shaping(delivery_id_from="header:I-Twilio-Idempotency-Token"),
        identification=(_rule("To", "phone", create=True),),
    ),
    "mailchimp": SenderPreset(
        sender="Mailchimp",
        path_type="mailchimp",
        signature="token",
        shaping=Shaping(
            event_type_from="type", bracket_keys=True, redact=("data.ip_opt", "data.ip_signup")
        ),
        identification=(
            _rule("data.email", "email", create=True),
            _rule("data.new_email", "email", create=True, types=("upemail",)),
        ),
        traits={"first_name": "data.merges.FNAME", "last_name": "data.merges.LNAME"},
        handshake="mailchimp",
    ),
    "standard_webhooks": SenderPreset(
        sender="Standard Webhooks",
        path_type="webhook",
        signature="standard_webhooks",
        shaping=Shaping(event_type_from="type", delivery_id_from="header:webhook-id"),
        identification=(_rule("data.email", "email"),),
    ),
    "zoom": SenderPreset(
        sender="Zoom",
        path_type="zoom",
        signature="zoom",
        shaping=Shaping(event_type_from="event", redact=("payload.object.password",)),
        identification=(_rule("payload.object.participant.email", "email"),),
        handshake="zoom",
    ),
    "meta": SenderPreset(
        sender="Meta (Facebook, Instagram, WhatsApp)",
        path_type="meta",
        signature="github",  # X-Hub-Signature-256: sha256=<hex>, as GitHub signs
        shaping=Shaping(event_type_from="_delivery.object", split="entry"),
        handshake="meta",
    ),
}
NAMES = tuple(PRESETS)


def expand(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """A source's create request with preset `name` filled in where the request is silent;
    ValueError naming the problem when the two cannot be combined."""
    preset = PRESETS.get(name)
    if preset is None:
        raise ValueError(f"preset {name!r} is not known; known: {', '.join(NAMES)}")
    if given.get("kind", "webhook") != "webhook":
        raise ValueError(f"preset {name!r} is for webhook sources; leave kind out")
    data = dict(given)
    data.setdefault("name", preset.sender)
    data.setdefault("identification", [_rule_json(rule) for rule in preset.identification])
    data.setdefault("traits", dict(preset.traits))
    shaping = data.get("shaping", {})
    if isinstance(shaping, Mapping):
        data["shaping"] = {**_shaping_json(preset.shaping), **shaping}
    if "signature" not in data and preset.signature is not None:
        raise ValueError(
            f"the {name} preset checks signatures ({preset.signature}): give signature.secrets,"
            " or signature null to take unsigned deliveries"
        )
    signature = data.get("signature")
    scheme = preset.signature
    # A signature of another scheme is the user's alone; of this one, it fills in the options.
    if isinstance(signature, Mapping) and scheme and signature.get("preset", scheme) == scheme:
        data["signature"] = {"preset": scheme, **preset.signature_options, **signature}
    return data


def _rule_json(rule: IdentificationRule) -> dict[str, Any]:
    return {
        "path": label(rule.path),
        "kind": rule.kind,
        "create_profile": rule.create_profile,
        "event_types": list(rule.event_types),
    }


def _shaping_json(shaping: Shaping) -> dict[str, Any]:
    return {
        "event_type_from": shaping.event_type_from,
        "split": shaping.split,
        "delivery_id_from": shaping.delivery_id_from,
        "redact": list(shaping.redact),
        "form_json_field": shaping.form_json_field,
        "bracket_keys": shaping.bracket_keys,
    }
