from __future__ import annotations

import socket

import pytest
from email_validator import deliverability

from resources.emails import InvalidEmail, normalize_email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("bob@example.com", "bob@example.com"),
        ("  Bob.Smith@Example.COM \n", "bob.smith@example.com"),
        # NFKC: full-width letters and at-sign from an East Asian input method.
        ("\uff22\uff4f\uff42\uff20example.com", "bob@example.com"),
        ("Jörg@München.DE", "jörg@münchen.de"),
        ("bob+tag@sub.example.org", "bob+tag@sub.example.org"),
    ],
)
def test_addresses_are_normalised_to_one_lower_case_form(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


def test_two_spellings_of_one_address_normalise_equal() -> None:
    assert normalize_email("ALICE@Example.com") == normalize_email(" alice@example.COM")


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("", "the address is empty"),
        ("   ", "the address is empty"),
        ("bob.example.com", "the address has no @"),
        ("bob@", "something after the @-sign"),
        ("@example.com", "something before the @-sign"),
        ("bob@example", "should have a period"),
        ("bob smith@example.com", "invalid characters before the @-sign"),
        ("bob..smith@example.com", "two periods in a row"),
        ("Bob <bob@example.com>", "display name"),
        ("bob@host.invalid", "special-use or reserved name"),
    ],
)
def test_invalid_addresses_say_what_is_wrong(raw: str, says: str) -> None:
    with pytest.raises(InvalidEmail, match=says) as caught:
        normalize_email(raw)
    assert isinstance(caught.value, ValueError)


def test_no_dns_lookup_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args: object, **kwargs: object) -> None:
        raise AssertionError("normalize_email must not look anything up in DNS")

    # email_validator's DNS check (dnspython) and any resolver call through the socket module.
    monkeypatch.setattr(deliverability, "validate_email_deliverability", no_dns)
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    # A domain that exists nowhere: only a DNS check could refuse it.
    assert normalize_email("someone@no-such-domain-privatune.example") == (
        "someone@no-such-domain-privatune.example"
    )
