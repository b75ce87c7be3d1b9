"""Normalisation, junk and rule extraction: the same person gives the same identifier, and
placeholder values identify nobody. Pure functions, checked with Hypothesis."""

from __future__ import annotations

from typing import Any

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from eventstitch.identity.normalise import JUNK_VALUES, MAX_VALUE_LENGTH, junk_set, normalise
from eventstitch.identity.rules import Policy, extract, identify
from eventstitch.storage.records import IdentificationRule

KINDS = ("email", "phone", "user_id", "stripe_customer")
REGIONS = ("US", "PL", "GB", "DE", "FR", "BR", "IN", "JP", "AU", "IT")
SPACES = st.text(alphabet=" \t\r\n\u00a0\u2003", max_size=3)

local_parts = st.from_regex(r"[a-z0-9][a-z0-9._%+-]{0,19}", fullmatch=True)
domains = st.from_regex(r"[a-z0-9][a-z0-9-]{0,15}\.[a-z]{2,6}", fullmatch=True)
emails = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)


@st.composite
def any_case(draw: st.DrawFn, text: str) -> str:
    """`text` with each letter upper- or lower-cased at random."""
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if flip else c.lower() for c, flip in zip(text, flips, strict=True))


@st.composite
def disguised(draw: st.DrawFn, text: str) -> str:
    """`text` in any case, with whitespace around it."""
    return draw(SPACES) + draw(any_case(text)) + draw(SPACES)


def rule(path: str, kind: str, create: bool = False, types: tuple[str, ...] = ()) -> Any:
    return IdentificationRule(tuple(path.split(".")), kind, create, types)


# -- email ---------------------------------------------------------------------------------


@given(email=emails, data=st.data())
def test_email_is_trimmed_and_lower_cased_whatever_the_case_and_spaces(
    email: str, data: st.DataObject
) -> None:
    first = data.draw(disguised(email))
    second = data.draw(disguised(email))

    assert normalise("email", first) == email
    assert normalise("email", first) == normalise("email", second)


@pytest.mark.parametrize("text", ["a@a", "no-at-sign.com", "two@@a.com", "a b@c.com", "@a.com"])
def test_text_that_is_not_an_email_does_not_identify_as_email(text: str) -> None:
    assert normalise("email", text) is None


# -- phone ---------------------------------------------------------------------------------


@st.composite
def phone_numbers(draw: st.DrawFn) -> tuple[str, phonenumbers.PhoneNumber]:
    region = draw(st.sampled_from(REGIONS))
    kind = draw(
        st.sampled_from(
            [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
        )
    )
    number = phonenumbers.example_number_for_type(region, kind)
    assert number is not None
    return region, number


INTERNATIONAL_FORMATS = (
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.RFC3966,
)


@given(
    found=phone_numbers(),
    style=st.sampled_from(INTERNATIONAL_FORMATS),
    region=st.sampled_from((None, *REGIONS)),
    pad=SPACES,
)
def test_phone_with_country_code_becomes_e164_with_or_without_default_region(
    found: tuple[str, phonenumbers.PhoneNumber],
    style: int,
    region: str | None,
    pad: str,
) -> None:
    _, number = found
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    written = pad + phonenumbers.format_number(number, style) + pad

    assert normalise("phone", written, default_region=region) == e164


@given(found=phone_numbers())
def test_national_phone_needs_the_default_region_to_identify(
    found: tuple[str, phonenumbers.PhoneNumber],
) -> None:
    region, number = found
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    assert normalise("phone", national) is None
    assert normalise("phone", national, default_region=region) == e164


@pytest.mark.parametrize("text", ["12", "+1 000", "+48 000 000 000", "call me", "+999123456789"])
def test_invalid_phone_numbers_do_not_identify(text: str) -> None:
    assert normalise("phone", text, default_region="US") is None


# -- junk ----------------------------------------------------------------------------------


@given(
    junk=st.sampled_from(sorted(JUNK_VALUES)),
    kind=st.sampled_from(KINDS),
    region=st.sampled_from((None, "US")),
    data=st.data(),
)
def test_every_documented_junk_value_never_identifies_in_any_case_or_spacing(
    junk: str, kind: str, region: str | None, data: st.DataObject
) -> None:
    written = data.draw(disguised(junk))

    assert normalise(kind, written, default_region=region) is None


@pytest.mark.parametrize(
    "documented",
    ["", "null", "undefined", "none", "0", "anonymous", "[object Object]", "true", "false"],
)
def test_junk_values_named_in_the_issue_are_in_the_list(documented: str) -> None:
    assert documented.lower() in JUNK_VALUES


@given(
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.lists(st.text(max_size=5), max_size=3),
        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    ),
    kind=st.sampled_from(KINDS),
)
def test_objects_lists_booleans_and_null_never_identify(value: object, kind: str) -> None:
    assert normalise(kind, value) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(123, "123"), (123.0, "123"), (0.0, None), (10**15, "1" + "0" * 15), (1e15, "1" + "0" * 15)],
)
def test_numbers_identify_as_their_integer_text(raw: object, expected: str | None) -> None:
    assert normalise("user_id", raw) == expected


def test_fractional_and_infinite_numbers_never_identify() -> None:
    assert normalise("user_id", 12.5) is None
    assert normalise("user_id", float("nan")) is None
    assert normalise("user_id", float("inf")) is None


def test_configured_extra_junk_values_never_identify() -> None:
    junk = junk_set(["  Test-User ", "DEMO"])

    assert normalise("user_id", "test-user", junk=junk) is None
    assert normalise("user_id", " demo ", junk=junk) is None
    assert normalise("user_id", "real-user", junk=junk) == "real-user"


# -- idempotence ---------------------------------------------------------------------------

raw_values = st.one_of(
    st.text(max_size=40),
    emails,
    st.builds(lambda n: f"+48 {n}", st.integers(100_000_000, 999_999_999)),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
)


@settings(max_examples=300)
@given(
    raw=raw_values,
    kind=st.sampled_from(KINDS),
    region=st.sampled_from((None, "US", "PL", "GB")),
)
@example(raw=" A@Example.COM ", kind="email", region=None)
@example(raw="(415) 555-2671", kind="phone", region="US")
def test_normalising_a_normalised_value_changes_nothing(
    raw: object, kind: str, region: str | None
) -> None:
    once = normalise(kind, raw, default_region=region)
    if once is not None:
        assert normalise(kind, once, default_region=region) == once


def test_an_email_that_outgrows_the_limit_once_lower_cased_identifies_nobody() -> None:
    raw = "\u0130" * 100 + "@" + "a" * 150 + ".com"  # 255 characters as sent, 355 lower-cased
    assert normalise("email", raw) is None


def test_an_email_with_a_dotted_capital_i_lower_cases_as_it_always_did() -> None:
    """Identifiers stored before keep matching: "İ" becomes "i" and a combining dot."""
    once = normalise("email", "\u0130lker@Example.org")
    assert once == "i\u0307lker@example.org"
    assert normalise("email", once) == once


# Letters whose lower case differs in length or depends on the neighbours ("İ" lower-cases to
# two characters, a final "Σ" to "ς"), around the length limit.
long_local_parts = st.text(alphabet="\u0130IiAa\u03a3\u1e9e.+-", min_size=1, max_size=200)
long_domains = st.builds(
    lambda name, tld: f"{name}.{tld}",
    st.text(alphabet="aA\u0130\u03a3-", min_size=1, max_size=120),
    st.sampled_from(["com", "ORG", "\u0130o"]),
)


@settings(max_examples=300)
@given(local=long_local_parts, domain=long_domains, kind=st.sampled_from(KINDS))
@example(local="\u0130" * 100, domain="a" * 150 + ".com", kind="email")
@example(local="\u0130" * 128, domain="a" * 123 + ".com", kind="email")  # 256 as sent
def test_normalised_values_near_the_limit_stay_within_it_and_normalise_to_themselves(
    local: str, domain: str, kind: str
) -> None:
    once = normalise(kind, f"{local}@{domain}")

    if once is not None:
        assert len(once) <= MAX_VALUE_LENGTH
        assert normalise(kind, once) == once


# -- extract: rules applied to a payload ---------------------------------------------------


def test_rules_find_identifiers_on_nested_paths() -> None:
    rules = [
        rule("customer.email", "email", create=True),
        rule("data.object.customer_email", "email"),
        rule("data.object.customer", "stripe_customer"),
    ]
    payload = {
        "customer": {"email": " Jane@Example.org "},
        "data": {"object": {"customer_email": "BILL@example.org", "customer": "cus_123"}},
    }

    claim = extract(payload, "charge.succeeded", rules, {})

    assert claim is not None
    assert claim.identifiers == (
        ("email", "jane@example.org"),
        ("email", "bill@example.org"),
        ("stripe_customer", "cus_123"),
    )
    assert claim.create_profile is True


def test_missing_or_non_object_intermediate_paths_find_nothing() -> None:
    rules = [rule("customer.email", "email", create=True)]

    assert extract({"customer": "a@a.com"}, "t", rules, {}) is None
    assert extract({"customer": ["a@a.com"]}, "t", rules, {}) is None
    assert extract({}, "t", rules, {}) is None


@given(
    keys=st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-0123456789", min_size=1, max_size=8),
        min_size=1,
        max_size=6,
    ),
    email=emails,
)
def test_a_value_at_any_dotted_path_is_found(keys: list[str], email: str) -> None:
    payload: Any = email.upper()
    for key in reversed(keys):
        payload = {key: payload, "noise": "x@y.zz"}

    claim = extract(payload, "t", [rule(".".join(keys), "email", create=True)], {})

    assert claim is not None
    assert claim.identifiers == (("email", email),)


def test_a_list_skips_junk_and_objects_and_identifies_its_one_person() -> None:
    payload = {"emails": [" B@B.com", "undefined", {"x": "c@c.com"}, ["d@d.com"], "b@b.COM"]}

    claim = extract(payload, "t", [rule("emails", "email", create=True)], {})

    assert claim is not None
    assert claim.identifiers == (("email", "b@b.com"),)


def test_event_types_narrow_a_rule_to_those_types() -> None:
    rules = [rule("email", "email", create=True, types=("charge.succeeded", "invoice.paid"))]
    payload = {"email": "a@a.com"}

    assert extract(payload, "charge.succeeded", rules, {}) is not None
    assert extract(payload, "invoice.paid", rules, {}) is not None
    assert extract(payload, "customer.created", rules, {}) is None


def test_traits_are_copied_from_their_paths_when_the_event_identifies_someone() -> None:
    traits = {"name": ("user",), "plan": ("account", "plan"), "missing": ("nowhere",)}
    payload = {"email": "a@a.com", "user": "John", "account": {"plan": "pro"}}

    claim = extract(payload, "t", [rule("email", "email", create=True)], traits)

    assert claim is not None
    assert dict(claim.traits) == {"name": "John", "plan": "pro"}


def test_traits_alone_make_no_claim() -> None:
    claim = extract({"user": "John"}, "t", [rule("email", "email")], {"name": ("user",)})

    assert claim is None


def test_only_rules_that_found_a_value_decide_whether_a_profile_is_created() -> None:
    rules = [rule("email", "email", create=True), rule("phone", "phone")]

    claim = extract({"email": "undefined", "phone": "+48601234567"}, "t", rules, {})

    assert claim is not None
    assert claim.identifiers == (("phone", "+48601234567"),)
    assert claim.create_profile is False


def test_shared_kinds_become_traits_and_never_identifiers() -> None:
    policy = Policy(shared=frozenset({"office_phone"}))
    rules = [rule("email", "email", create=True), rule("office", "office_phone")]

    claim = extract({"email": "a@a.com", "office": "Reception 1"}, "t", rules, {}, policy)
    alone = extract({"office": "Reception 1"}, "t", rules, {}, policy)

    assert claim is not None
    assert claim.identifiers == (("email", "a@a.com"),)
    assert dict(claim.traits) == {"office_phone": "Reception 1"}
    assert alone is None


def test_the_default_region_of_the_policy_applies_to_phones() -> None:
    rules = [rule("phone", "phone", create=True)]

    assert extract({"phone": "601 234 567"}, "t", rules, {}) is None
    claim = extract({"phone": "601 234 567"}, "t", rules, {}, Policy(default_region="PL"))
    assert claim is not None
    assert claim.identifiers == (("phone", "+48601234567"),)


def test_the_same_identifier_found_twice_counts_once() -> None:
    rules = [rule("email", "email"), rule("contact.email", "email", create=True)]

    claim = extract({"email": "A@a.com", "contact": {"email": "a@a.com "}}, "t", rules, {})

    assert claim is not None
    assert claim.identifiers == (("email", "a@a.com"),)
    assert claim.create_profile is True


_ADDRESSES = st.sampled_from(["alex@x.com", "ALEX@x.com ", "bea@y.com", "cy@z.org", "", None, 7])


@given(st.lists(_ADDRESSES, max_size=6))
def test_a_list_at_a_rule_path_identifies_only_when_it_names_one_person(values: list[Any]) -> None:
    rule = IdentificationRule(path=("to",), kind="email", create_profile=True)
    found = identify({"to": values}, "mail", [rule], {})
    distinct = {v for v in (normalise("email", value) for value in values) if v is not None}
    if len(distinct) == 1:
        assert found.claim is not None
        assert found.claim.identifiers == (("email", distinct.pop()),)
        assert found.skipped == ()
    else:
        assert found.claim is None
        assert found.skipped == (("to",) if len(distinct) > 1 else ())
