"""One realistic delivery per sender preset, written after each sender's public docs, with the
headers the sender sends and its signature computed as the sender computes it."""

from __future__ import annotations

import base64
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

SECRET = "presets-secret-0123456789"
WHSEC = "whsec_" + base64.b64encode(b"standard-webhooks-key-24b").decode()
FIXTURES = Path(__file__).parent.parent / "fixtures" / "senders"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

Signer = Callable[[bytes, str, str], dict[str, str]]
"""(body, query string, public URL) to the signature headers."""


def _hex(key: bytes, message: bytes, algorithm: str = "sha256") -> str:
    return hmac.new(key, message, algorithm).hexdigest()


def _b64(key: bytes, message: bytes, algorithm: str = "sha256") -> str:
    return base64.b64encode(hmac.new(key, message, algorithm).digest()).decode()


def _github(body: bytes, _: str, __: str) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + _hex(SECRET.encode(), body)}


def _stripe(body: bytes, _: str, __: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    signed = _hex(SECRET.encode(), stamp.encode() + b"." + body)
    return {"Stripe-Signature": f"t={stamp},v1={signed}"}


def _shopify(body: bytes, _: str, __: str) -> dict[str, str]:
    return {"X-Shopify-Hmac-Sha256": _b64(SECRET.encode(), body)}


def _sentry(body: bytes, _: str, __: str) -> dict[str, str]:
    return {
        "Sentry-Hook-Signature": _hex(SECRET.encode(), body),
        "Sentry-Hook-Timestamp": str(int(time.time())),
    }


def _v0(stamp_header: str, signature_header: str) -> Signer:
    def sign(body: bytes, _: str, __: str) -> dict[str, str]:
        stamp = str(int(time.time()))
        signed = _hex(SECRET.encode(), b"v0:" + stamp.encode() + b":" + body)
        return {stamp_header: stamp, signature_header: "v0=" + signed}

    return sign


def _standard(body: bytes, _: str, __: str) -> dict[str, str]:
    message_id, stamp = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", str(int(time.time()))
    key = base64.b64decode(WHSEC.removeprefix("whsec_"))
    signed = _b64(key, f"{message_id}.{stamp}.".encode() + body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + signed,
    }


def _twilio(body: bytes, query: str, url: str) -> dict[str, str]:
    pairs = sorted((k, v[0]) for k, v in _form(body).items())
    signed = (url + (f"?{query}" if query else "") + "".join(k + v for k, v in pairs)).encode()
    return {"X-Twilio-Signature": _b64(SECRET.encode(), signed, "sha1")}


def _form(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body.decode(), keep_blank_values=True)


def _unsigned(_: bytes, __: str, ___: str) -> dict[str, str]:
    return {}


def fixture(name: str) -> bytes:
    """A JSON fixture as the sender sends it (compact, as most senders serialise)."""
    return json.dumps(json.loads((FIXTURES / f"{name}.json").read_text())).encode()


@dataclass(frozen=True)
class Delivery:
    """A preset, one delivery of its sender, and what Eventstitch must make of it."""

    preset: str
    path_type: str
    body: bytes
    sign: Signer
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""
    types: tuple[str, ...] = ()
    properties: dict[str, Any] = field(default_factory=dict)
    """Dotted path in the first event's properties to the value expected there."""
    redacted: tuple[str, ...] = ()
    identifier: str | None = None
    """`kind:value` of the profile the first event is linked to, by the suggested rules."""
    existing_profile: bool = False
    """The suggested rule only links to a profile that exists (seeded first)."""
    deduplicated: bool = True
    signature: dict[str, Any] = field(default_factory=dict)


MAILCHIMP_FORM = urlencode(
    {
        "type": "subscribe",
        "fired_at": "2009-03-26 21:35:57",
        "data[id]": "8a25ff1d98",
        "data[list_id]": "a6b5da1054",
        "data[email]": "api@mailchimp.com",
        "data[email_type]": "html",
        "data[ip_opt]": "10.20.10.30",
        "data[ip_signup]": "10.20.10.30",
        "data[merges][EMAIL]": "api@mailchimp.com",
        "data[merges][FNAME]": "Mailchimp",
        "data[merges][LNAME]": "API",
    }
).encode()
TWILIO_FORM = urlencode(
    {
        "AccountSid": "AC00000000000000000000000000000000",
        "ApiVersion": "2010-04-01",
        "From": "+15017122661",
        "MessageSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
        "MessageStatus": "delivered",
        "SmsSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
        "SmsStatus": "delivered",
        "To": "+1 415 555 0142",
    }
).encode()

DELIVERIES = [
    Delivery(
        "github",
        "github",
        urlencode({"payload": fixture("github_push").decode()}).encode(),
        _github,
        content_type=FORM,
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "X-GitHub-Hook-ID": "292430182",
            "User-Agent": "GitHub-Hookshot/044aadd",
        },
        types=("push",),
        properties={"ref": "refs/heads/main", "repository.full_name": "octo-org/octo-repo"},
        identifier="email:octocat@github.com",
        existing_profile=True,
    ),
    Delivery(
        "stripe",
        "stripe",
        fixture("stripe_customer_created"),
        _stripe,
        types=("customer.created",),
        properties={"data.object.id": "cus_PqR5tUvW9xYz01"},
        identifier="email:jenny.rosen@example.com",
    ),
    Delivery(
        "shopify",
        "shopify",
        fixture("shopify_order"),
        _shopify,
        headers={
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": "example-shop.myshopify.com",
            "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            "X-Shopify-API-Version": "2024-07",
        },
        types=("orders/create",),
        properties={"line_items": [{"sku": "IPOD-342-N", "quantity": 1, "price": "199.00"}]},
        redacted=(
            "token",
            "cart_token",
            "checkout_token",
            "browser_ip",
            "client_details.browser_ip",
        ),
        identifier="email:bob.norman@example.com",
    ),
    Delivery(
        "sendgrid",
        "sendgrid",
        fixture("sendgrid_events"),
        _unsigned,
        query=f"token={SECRET}",
        headers={"User-Agent": "SendGrid Event API"},
        types=("processed", "delivered", "open"),
        properties={"sg_event_id": "sg-evt-processed-1", "category": ["welcome"]},
        redacted=("ip",),
        identifier="email:example@test.com",
    ),
    Delivery(
        "alertmanager",
        "alert",
        fixture("alertmanager"),
        _unsigned,
        headers={"X-Webhook-Token": SECRET, "User-Agent": "Alertmanager/0.27.0"},
        types=("firing", "resolved"),
        properties={"labels.alertname": "HighLatency", "_delivery.receiver": "eventstitch"},
        deduplicated=False,
    ),
    Delivery(
        "sentry",
        "sentry",
        fixture("sentry_event_alert"),
        _sentry,
        headers={
            "Sentry-Hook-Resource": "event_alert",
            "Request-ID": "d6e34a5a-6b06-4c3e-a0a0-9b2e6f0f0c11",
        },
        types=("event_alert",),
        properties={"action": "triggered", "data.event.level": "error"},
        redacted=(
            "data.event.user.ip_address",
            "data.event.request.cookies",
            "data.event.request.headers",
        ),
        identifier="email:dana@example.com",
        existing_profile=True,
    ),
    Delivery(
        "slack",
        "slack",
        fixture("slack_event"),
        _v0("X-Slack-Request-Timestamp", "X-Slack-Signature"),
        types=("app_mention",),
        properties={"event_id": "Ev08MFMKH6", "team_id": "T0001"},
        redacted=("token",),
        identifier="slack_user:U061F7AUR",
        existing_profile=True,
    ),
    Delivery(
        "twilio",
        "sms-status",
        TWILIO_FORM,
        _twilio,
        content_type=FORM,
        headers={
            "I-Twilio-Idempotency-Token": "c9d7e4a1-3b7f-4a36-9b8e-2f5d8f1a0b11",
            "User-Agent": "TwilioProxy/1.1",
        },
        types=("sms-status",),
        properties={"MessageStatus": "delivered"},
        identifier="phone:+14155550142",
        signature={"url": "PUBLIC_URL"},
    ),
    Delivery(
        "mailchimp",
        "mailchimp",
        MAILCHIMP_FORM,
        _unsigned,
        content_type=FORM,
        query=f"token={SECRET}",
        headers={"User-Agent": "MailChimp"},
        types=("subscribe",),
        properties={"data.merges.FNAME": "Mailchimp", "data.list_id": "a6b5da1054"},
        redacted=("data.ip_opt", "data.ip_signup"),
        identifier="email:api@mailchimp.com",
        deduplicated=False,
    ),
    Delivery(
        "standard_webhooks",
        "webhook",
        fixture("standard_webhooks"),
        _standard,
        types=("invoice.paid",),
        properties={"data.invoice_id": "inv_0042"},
        identifier="email:lee@example.com",
        existing_profile=True,
        signature={"secrets": [WHSEC]},
    ),
    Delivery(
        "zoom",
        "zoom",
        fixture("zoom_participant_joined"),
        _v0("x-zm-request-timestamp", "x-zm-signature"),
        types=("meeting.participant_joined",),
        properties={"payload.object.topic": "Weekly sync"},
        redacted=("payload.object.password",),
        identifier="email:sam@example.com",
        existing_profile=True,
        deduplicated=False,
    ),
    Delivery(
        "meta",
        "meta",
        fixture("meta_page"),
        _github,
        types=("page",),
        properties={"id": "1234567890", "_delivery.object": "page"},
        deduplicated=False,
    ),
]


def at(value: Any, path: str) -> Any:
    """The value at a dotted path, or a marker when it is absent."""
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return ABSENT
        value = value[key]
    return value


ABSENT = object()
