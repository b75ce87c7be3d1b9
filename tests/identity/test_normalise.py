"""Normalisation and junk: the same person gives the same identifier; junk identifies nobody."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from eventstitch.identity.normalise import JUNK_VALUES, junk_set, normalise
from eventstitch.identity.rules import Policy, extract
from eventstitch.storage.records import IdentificationRule

emails = st.emails()
spaces = st.sampled_from(["", " ", "  ", "\t", "\n "])


@given(emails, spaces, spaces, st.booleans())
def test_an_email_is_the_same_identifier_whatever_its_case_and_spaces(
    email: str, before: str, after: str, upper: bool
) -> None:
    written = before + (email.upper() if upper else email) + after
    value = normalise("email", written)
    assert value == normalise("email", email)
    if value is not None:
        assert value == value.strip().lower()
        assert normalise("email", value) == value  # idempotent


@given(
    st.sampled_from(sorted(JUNK_VALUES)),
    spaces,
    spaces,
    st.booleans(),
    st.sampled_from(["email", "phone", "user_id", "custom"]),
)
def test_junk_never_identifies_anyone(
    junk: str, before: str, after: str, upper: bool, kind: str
) -> None:
    assert normalise(kind, before + (junk.upper() if upper else junk) + after) is None


@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.dictionaries(st.text(), st.text()),
        st.lists(st.text()),
        st.floats().filter(lambda f: not f.is_integer()),
    )
)
def test_values_that_are_not_scalars_or_whole_numbers_never_identify(raw: object) -> None:
    assert normalise("user_id", raw) is None


@given(st.integers(1, 10**15))
def test_whole_numbers_identify_by_their_integer_text(number: int) -> None:
    assert normalise("user_id", number) == str(number)
    assert normalise("user_id", float(number)) == str(number)


def test_phones_become_e164_with_or_without_a_default_region() -> None:
    assert normalise("phone", "+48 601 234 567") == "+48601234567"
    assert normalise("phone", "(201) 555-0123", default_region="US") == "+12015550123"
    assert normalise("phone", "(201) 555-0123") is None  # no country, no default region
    assert normalise("phone", "12") is None


def test_configured_junk_adds_to_the_list() -> None:
    junk = junk_set(["Test@Example.com"])
    assert normalise("email", "test@example.com", junk=junk) is None
    assert normalise("email", "real@example.com", junk=junk) == "real@example.com"


@given(st.lists(emails, min_size=1, max_size=4), st.sampled_from(["signup", "order"]))
def test_rules_extract_nested_lists_respect_event_types_and_shared_kinds(
    addresses: list[str], event_type: str
) -> None:
    rules = (
        IdentificationRule(("customer", "emails"), "email", True),
        IdentificationRule(("desk",), "office_phone"),
        IdentificationRule(("uid",), "user_id", event_types=("signup",)),
    )
    payload = {"customer": {"emails": addresses}, "desk": "+48601234567", "uid": "u-1"}
    claim = extract(
        payload,
        event_type,
        rules,
        {"name": ("customer", "name")},
        Policy(shared=frozenset({"office_phone"})),
    )
    assert claim is not None
    expected = list(dict.fromkeys(("email", normalise("email", a)) for a in addresses))
    expected = [pair for pair in expected if pair[1] is not None]
    if event_type == "signup":
        expected.append(("user_id", "u-1"))
    assert list(claim.identifiers) == expected
    assert claim.traits["office_phone"] == "+48601234567"  # shared: a trait, never a link
    assert all(kind != "office_phone" for kind, _ in claim.identifiers)
