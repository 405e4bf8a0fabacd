"""E-mail addresses as privatune stores and compares them: one normal form per address."""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email


class InvalidEmail(ValueError):
    """The text is not an e-mail address; the message says what is wrong with it."""


def normalize_email(raw: str) -> str:
    """The address NFKC-normalised, trimmed and lower-cased as a whole (local part too: the
    product treats Bob@X.com and bob@x.com as one person), after a syntax check; InvalidEmail
    otherwise. Never looks the domain up in DNS: sign-in must not depend on a resolver, and an
    address is proven by the mail that reaches it, not by its MX record."""
    text = unicodedata.normalize("NFKC", raw).strip().lower()
    if not text:
        raise InvalidEmail("the address is empty")
    if "@" not in text:
        raise InvalidEmail("the address has no @")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        reason = str(exc)
        raise InvalidEmail(f"not a valid e-mail address: {reason[:1].lower()}{reason[1:]}") from exc
    return result.normalized.lower()
