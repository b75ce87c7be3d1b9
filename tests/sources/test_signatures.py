"""Signature checks as pure functions: the published vectors, every preset accepted when signed
right and refused for each problem, rotation, and properties over single-byte changes."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from urllib.parse import quote_plus, unquote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstitch.sources import signatures
from eventstitch.sources.signatures import SignatureRefused, verify
from eventstitch.storage.records import SignatureRule

NOW = 1_614_265_330.0
GITHUB = SignatureRule("github", ("It's a Secret to Everybody",))
STRIPE = SignatureRule("stripe", ("whsec_stripe_test_secret_0123",))
SHOPIFY = SignatureRule("shopify", ("shopify-shared-secret-0123",))
STANDARD = SignatureRule("standard_webhooks", ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",))
HMAC = SignatureRule(
    "hmac", ("generic-secret-0123456789",), "x-signature", "sha512", "base64", "sha512="
)
TOKEN = SignatureRule("token", ("token-secret-0123456789",), "x-webhook-token")
SLACK = SignatureRule("slack", ("8f742231b10e8888abcd99yyyzzz85a5",))
ZOOM = SignatureRule("zoom", ("zoom-secret-token-0123456789",))


def check(
    rule: SignatureRule, body: bytes, headers: dict[str, str], query: str = "", now: float = NOW
) -> None:
    verify(rule, source_id="hooks", body=body, headers=headers, query_string=query, now=now)


def refused(
    rule: SignatureRule, body: bytes, headers: dict[str, str], query: str = "", now: float = NOW
) -> SignatureRefused:
    with pytest.raises(SignatureRefused) as caught:
        check(rule, body, headers, query, now)
    assert caught.value.status == 401
    assert "source 'hooks'" in caught.value.message
    for secret in rule.secrets:
        assert secret not in caught.value.message
        assert secret not in repr(caught.value.errors)
    return caught.value


def hex_hmac(secret: str, message: bytes, algorithm: str = "sha256") -> str:
    return hmac.new(secret.encode(), message, getattr(hashlib, algorithm)).hexdigest()


def b64_hmac(key: bytes, message: bytes, algorithm: str = "sha256") -> str:
    return base64.b64encode(hmac.new(key, message, getattr(hashlib, algorithm)).digest()).decode()


def github_headers(body: bytes, secret: str = GITHUB.secrets[0]) -> dict[str, str]:
    return {"x-hub-signature-256": "sha256=" + hex_hmac(secret, body)}


def stripe_headers(
    body: bytes, stamp: int = int(NOW), secret: str = STRIPE.secrets[0]
) -> dict[str, str]:
    signed = f"{stamp}.".encode() + body
    return {"stripe-signature": f"t={stamp},v1={hex_hmac(secret, signed)}"}


def shopify_headers(body: bytes, secret: str = SHOPIFY.secrets[0]) -> dict[str, str]:
    return {"x-shopify-hmac-sha256": b64_hmac(secret.encode(), body)}


def standard_headers(
    body: bytes, stamp: int = int(NOW), secret: str = STANDARD.secrets[0]
) -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    message_id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    signed = f"{message_id}.{stamp}.".encode() + body
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": "v1," + b64_hmac(key, signed),
    }


def hmac_headers(body: bytes, secret: str = HMAC.secrets[0]) -> dict[str, str]:
    return {"x-signature": "sha512=" + b64_hmac(secret.encode(), body, "sha512")}


def token_headers(_: bytes, secret: str = TOKEN.secrets[0]) -> dict[str, str]:
    return {"x-webhook-token": secret}


def slack_headers(
    body: bytes, stamp: int = int(NOW), secret: str = SLACK.secrets[0]
) -> dict[str, str]:
    signed = f"v0:{stamp}:".encode() + body
    return {
        "x-slack-signature": "v0=" + hex_hmac(secret, signed),
        "x-slack-request-timestamp": str(stamp),
    }


def zoom_headers(
    body: bytes, stamp: int = int(NOW), secret: str = ZOOM.secrets[0]
) -> dict[str, str]:
    signed = f"v0:{stamp}:".encode() + body
    return {
        "x-zm-signature": "v0=" + hex_hmac(secret, signed),
        "x-zm-request-timestamp": str(stamp),
    }


SIGNED = {
    "github": (GITHUB, github_headers),
    "stripe": (STRIPE, stripe_headers),
    "shopify": (SHOPIFY, shopify_headers),
    "standard_webhooks": (STANDARD, standard_headers),
    "hmac": (HMAC, hmac_headers),
    "token": (TOKEN, token_headers),
    "slack": (SLACK, slack_headers),
    "zoom": (ZOOM, zoom_headers),
}
BODY = b'{"order": 42, "total": "9.99"}'


def test_the_published_github_vector_is_accepted() -> None:
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_headers(b"Hello, World!") == {"x-hub-signature-256": expected}
    check(GITHUB, b"Hello, World!", {"x-hub-signature-256": expected})


def test_the_published_slack_vector_is_accepted() -> None:
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = {
        "x-slack-request-timestamp": "1531420618",
        "x-slack-signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    }
    check(SLACK, body, headers, now=1531420618.0)
    assert refused(SLACK, body + b"x", headers, now=1531420618.0).reason == "bad_signature"


def test_the_published_standard_webhooks_vector_is_accepted() -> None:
    body = b'{"test": 2432232314}'
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    assert standard_headers(body) == headers
    check(STANDARD, body, headers)


@pytest.mark.parametrize("preset", sorted(SIGNED))
def test_each_preset_accepts_a_true_signature_and_refuses_another_body(preset: str) -> None:
    rule, make = SIGNED[preset]
    check(rule, BODY, make(BODY))
    if preset != "token":  # a token does not sign the body
        assert refused(rule, BODY + b" ", make(BODY)).reason == "bad_signature"


@pytest.mark.parametrize("preset", sorted(SIGNED))
def test_each_preset_refuses_a_missing_header_and_a_wrong_secret(preset: str) -> None:
    rule, make = SIGNED[preset]
    missing = refused(rule, BODY, {})
    assert missing.reason == "missing_signature"
    assert missing.errors[0]["problem"] == "missing"
    wrong = refused(rule, BODY, make(BODY, secret="whsec_" + "QUJD" * 8))
    assert wrong.reason == "bad_signature"
    assert wrong.errors == [{"field": signatures.signature_header(rule), "problem": "mismatch"}]


@pytest.mark.parametrize(
    ("rule", "headers"),
    [
        (GITHUB, {"x-hub-signature-256": "757107ea0eb2509fc211221cce984b8a"}),
        (GITHUB, {"x-hub-signature-256": "sha256="}),
        (STRIPE, {"stripe-signature": "v1=abcdef"}),
        (STRIPE, {"stripe-signature": "t=1614265330"}),
        (STRIPE, {"stripe-signature": "t=yesterday,v1=abcdef"}),
        (STRIPE, {"stripe-signature": "garbage"}),
        (HMAC, {"x-signature": "sha256=abc"}),
        (STANDARD, {**standard_headers(BODY), "webhook-signature": "v2,abc"}),
        (STANDARD, {**standard_headers(BODY), "webhook-timestamp": "-1"}),
    ],
)
def test_a_malformed_header_is_refused_as_malformed(
    rule: SignatureRule, headers: dict[str, str]
) -> None:
    error = refused(rule, BODY, headers)
    assert error.reason == "malformed_signature"
    assert error.errors[0]["problem"] == "malformed"


@pytest.mark.parametrize(
    ("rule", "make", "header"),
    [
        (SLACK, slack_headers, "x-slack-request-timestamp"),
        (ZOOM, zoom_headers, "x-zm-request-timestamp"),
    ],
)
def test_slack_and_zoom_need_their_timestamp_header_and_the_v0_prefix(
    rule: SignatureRule, make: object, header: str
) -> None:
    assert callable(make)
    headers = make(BODY)
    del headers[header]
    assert refused(rule, BODY, headers).errors == [{"field": header, "problem": "missing"}]
    name = signatures.signature_header(rule)
    unprefixed = {**make(BODY), name: make(BODY)[name].removeprefix("v0=")}
    assert refused(rule, BODY, unprefixed).reason == "malformed_signature"


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp"])
def test_standard_webhooks_needs_its_id_and_timestamp_headers(header: str) -> None:
    headers = standard_headers(BODY)
    del headers[header]
    error = refused(STANDARD, BODY, headers)
    assert error.reason == "missing_signature"
    assert error.errors == [{"field": header, "problem": "missing"}]


@pytest.mark.parametrize(
    ("rule", "make"),
    [SIGNED["stripe"], SIGNED["standard_webhooks"], SIGNED["slack"], SIGNED["zoom"]],
)
@pytest.mark.parametrize("offset", [-301, 301, -86_400, 10**9])
def test_a_timestamp_outside_the_tolerance_is_refused_either_way(
    rule: SignatureRule, make: object, offset: int
) -> None:
    assert callable(make)
    error = refused(rule, BODY, make(BODY, stamp=int(NOW) + offset))
    assert error.reason == "stale_signature"
    assert error.errors[0]["problem"] == "outside_tolerance"
    assert "300 s" in error.message


@pytest.mark.parametrize(
    ("rule", "make"),
    [SIGNED["stripe"], SIGNED["standard_webhooks"], SIGNED["slack"], SIGNED["zoom"]],
)
@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_a_timestamp_within_the_tolerance_is_accepted(
    rule: SignatureRule, make: object, offset: int
) -> None:
    assert callable(make)
    check(rule, BODY, make(BODY, stamp=int(NOW) + offset))


def test_the_tolerance_is_the_rules_own() -> None:
    strict = SignatureRule("stripe", STRIPE.secrets, tolerance_seconds=5)
    check(strict, BODY, stripe_headers(BODY, stamp=int(NOW) - 5))
    assert refused(strict, BODY, stripe_headers(BODY, stamp=int(NOW) - 6)).reason == (
        "stale_signature"
    )


@pytest.mark.parametrize("preset", sorted(SIGNED))
def test_during_rotation_either_secret_verifies(preset: str) -> None:
    rule, make = SIGNED[preset]
    new = "whsec_" + base64.b64encode(b"the new secret, 32 bytes long!!!").decode()
    rotating = dataclasses.replace(rule, secrets=(new, rule.secrets[0]))
    check(rotating, BODY, make(BODY))
    check(rotating, BODY, make(BODY, secret=new))
    rotated = dataclasses.replace(rule, secrets=(new,))
    check(rotated, BODY, make(BODY, secret=new))
    assert refused(rotated, BODY, make(BODY)).reason == "bad_signature"


def test_stripe_accepts_any_of_several_v1_signatures_and_ignores_other_schemes() -> None:
    good = stripe_headers(BODY)["stripe-signature"]
    stamp, v1 = good.split(",")
    header = f"{stamp},v0=0000,v1={'0' * 64},{v1}"
    check(STRIPE, BODY, {"stripe-signature": header})


def test_standard_webhooks_accepts_any_of_a_space_separated_list() -> None:
    headers = standard_headers(BODY)
    headers["webhook-signature"] = f"v1a,xyz v1,{'A' * 43}= {headers['webhook-signature']}"
    check(STANDARD, BODY, headers)


def test_a_token_may_come_in_the_query_string_and_is_stripped_from_it() -> None:
    query = f"a=1&token={TOKEN.secrets[0]}&b=2"
    check(TOKEN, b"", {}, query)
    assert signatures.strip_token(query) == "a=1&b=2"
    assert signatures.strip_token("q=a%20b&flag&token=s&%74oken=s") == "q=a%20b&flag"
    assert signatures.strip_token("%74oken=s&x=1") == "x=1"  # the name spelt escaped
    assert refused(TOKEN, b"", {}, "a=1&token=nope").reason == "bad_signature"


def test_a_token_in_a_custom_header() -> None:
    rule = SignatureRule("token", TOKEN.secrets, "x-hook-key")
    check(rule, b"", {"x-hook-key": TOKEN.secrets[0]})
    assert refused(rule, b"", {"x-webhook-token": TOKEN.secrets[0]}).reason == ("missing_signature")


@pytest.mark.parametrize(
    ("algorithm", "encoding"),
    [(a, e) for a in ("sha1", "sha256", "sha512") for e in ("hex", "base64")],
)
def test_generic_hmac_takes_each_algorithm_and_encoding(algorithm: str, encoding: str) -> None:
    secret = "generic-secret-0123456789"
    rule = SignatureRule("hmac", (secret,), "x-sig", algorithm, encoding, "")
    digest = hmac.new(secret.encode(), BODY, getattr(hashlib, algorithm)).digest()
    value = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    check(rule, BODY, {"x-sig": value})
    assert refused(rule, BODY, {"x-sig": value[::-1]}).reason == "bad_signature"


def test_an_unknown_preset_is_refused_rather_than_trusted() -> None:
    rule = SignatureRule("carrier-pigeon", ("some-secret-0123456789",), "x-sig")
    assert refused(rule, BODY, {"x-sig": "anything"}).reason == "malformed_signature"


def test_a_standard_webhooks_secret_must_be_base64() -> None:
    assert signatures.standard_webhooks_key("whsec_QUJD") == b"ABC"
    with pytest.raises(ValueError, match="base64"):
        signatures.standard_webhooks_key("whsec_not base64!")


# -- properties ------------------------------------------------------------------------------

bodies = st.binary(min_size=1, max_size=300)
presets = st.sampled_from(sorted(SIGNED))


def flip(data: bytes, index: int, value: int) -> bytes:
    """`data` with the byte at `index` (modulo its length) replaced by another value."""
    position = index % len(data)
    replacement = value if value != data[position] else (value + 1) % 256
    return data[:position] + bytes([replacement]) + data[position + 1 :]


@given(preset=presets, body=bodies)
def test_the_true_signature_of_any_body_is_accepted(preset: str, body: bytes) -> None:
    rule, make = SIGNED[preset]
    check(rule, body, make(body))


@given(
    preset=presets.filter(lambda p: p != "token"),
    body=bodies,
    index=st.integers(0, 10_000),
    value=st.integers(0, 255),
)
def test_any_single_byte_change_to_the_body_is_refused(
    preset: str, body: bytes, index: int, value: int
) -> None:
    rule, make = SIGNED[preset]
    with pytest.raises(SignatureRefused):
        check(rule, flip(body, index, value), make(body))


@given(preset=presets, body=bodies, index=st.integers(0, 10_000), value=st.integers(0, 255))
def test_any_single_byte_change_to_the_signature_is_refused(
    preset: str, body: bytes, index: int, value: int
) -> None:
    rule, make = SIGNED[preset]
    headers = make(body)
    name = signatures.signature_header(rule)
    # Headers arrive as bytes decoded as latin-1: change one of those bytes.
    changed = flip(headers[name].encode("latin-1"), index, value).decode("latin-1")
    with pytest.raises(SignatureRefused):
        check(rule, body, {**headers, name: changed})


_PLAIN = st.text(alphabet="abcxyz019-_.~", min_size=1, max_size=8)
_SECRET = "tok-secret-0123456789"


def _token_piece(name_case: str, escape: bool, plus: bool, value_only: bool) -> str:
    """One way a query string can carry the secret."""
    if value_only:
        return quote_plus(_SECRET) if escape else _SECRET
    name = {"lower": "token", "upper": "TOKEN", "mixed": "ToKeN"}[name_case]
    if escape:
        name = "".join(f"%{ord(c):02X}" for c in name)
    if plus:
        name = f"+{name}+"
    return f"{name}={quote_plus(_SECRET) if escape else _SECRET}"


@given(
    params=st.lists(st.tuples(_PLAIN, _PLAIN), max_size=6),
    carriers=st.lists(
        st.tuples(
            st.sampled_from(["lower", "upper", "mixed"]),
            st.booleans(),
            st.booleans(),
            st.booleans(),
            st.integers(0, 6),
        ),
        min_size=1,
        max_size=3,
    ),
    separators=st.lists(st.sampled_from(["&", ";"]), min_size=10, max_size=10),
)
def test_strip_token_leaves_no_secret_and_every_other_parameter_as_sent(
    params: list[tuple[str, str]],
    carriers: list[tuple[str, bool, bool, bool, int]],
    separators: list[str],
) -> None:
    pieces = [f"{k}={v}" for k, v in params]
    for name_case, escape, plus, value_only, at in carriers:
        pieces.insert(min(at, len(pieces)), _token_piece(name_case, escape, plus, value_only))
    query = "".join(sep + piece for sep, piece in zip(separators, pieces, strict=False))[1:]
    kept = signatures.strip_token(query, secrets=(_SECRET,))
    assert _SECRET not in unquote_plus(kept)
    assert "token" not in unquote_plus(kept).lower()
    assert [p for p in kept.replace(";", "&").split("&") if p] == [f"{k}={v}" for k, v in params]
