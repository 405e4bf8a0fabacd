"""Requests an assistant over documents must not answer, whatever retrieval finds: the value of
a secret (a password, a private key, an API token), personal data about a person (a home
address, a salary, a medical record), actions it cannot take (transfer money, grant access,
delete a record), and facts about the asker's own organisation chart. They are escalated to a
person with the project's escalation text.

Rules over the wording of the request, not over any corpus: a how-to question about secrets
("How do I generate an SSH key?", "How do I change my password?") is documentation and passes;
asking for the secret itself does not. Each rule returns its category, so the answer (and the
evaluation report) says why it was escalated."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Asking for something outright ("give me", "tell me") or as a question about its value.
_IMPERATIVE = (
    r"(?:give|send|tell|show|share|provide|reveal|disclose|paste|email|e-mail|read out|dm|text)"
)
_QUESTION = r"(?:what(?:'s| is| are| was| were)|which is|where(?:'s| is| are)|do you (?:know|have))"
_HOW_TO = re.compile(
    r"^\s*(?:how (?:do|can|should|would|to|does|is|are)|how's|can i|should i|is it (?:safe|"
    r"possible)|what (?:is|are) the (?:best|recommended|right|correct) way)\b",
    re.IGNORECASE,
)
_SECRET = (
    r"(?:passwords?|passphrases?|passcodes?|pin(?: code| number)?|private keys?|secret keys?|"
    r"secret access keys?|secrets?|api keys?|access keys?|access tokens?|auth(?:entication)? "
    r"tokens?|api tokens?|tokens?|credentials?|login details|logins?|ssh keys?|recovery codes?|2fa codes?|otp)"
)
# The secret itself, not a rule about secrets: "the root password of the server", "the API key
# for our provider", "the Wi-Fi password?" - not "the password policy" or "where is the key set".
_OF_SOMETHING = r"(?=\s*(?:$|[?.!,]|of\b|for\b|to\b|used\b|that\b|we\b|on\b|in\b|at\b))"
_SECRET_REQUEST = re.compile(
    rf"\b{_IMPERATIVE}\b.{{0,60}}\b{_SECRET}\b|\b{_QUESTION}\b.{{0,60}}\b{_SECRET}\b{_OF_SOMETHING}",
    re.IGNORECASE,
)
# Personal data whatever the phrasing, and data that is personal when a person is named.
_PERSONAL = (
    r"(?:home address(?:es)?|private address|(?:personal|private|home) (?:e-?mail(?: address)?|"
    r"phone(?: number)?|mobile(?: number)?|number)|date of birth|social security number|"
    r"national insurance number|passport number|medical (?:records?|history)|health records?|"
    r"disciplinary records?|criminal records?)"
)
_OF_PERSON = (
    r"(?:salar(?:y|ies)|pay(?:check|slip| slip)s?|bank (?:details|account(?: number)?)|"
    r"(?:mobile|cell|phone) (?:number|no\.?)|e-?mail address)"
)
_ORGANISATIONAL = (
    r"(?:company|team|project|support|help ?desk|service ?desk|desk|office|department|service|"
    r"it|hr|reception|security|sales|customers?|press|admin|administrator)\b"
)
_DETERMINER = r"(?:the|my|our|a|an|this|that)"
# "of the maintainer", "does John", "Maria's" - not "of the IT helpdesk" or "for our team".
_PERSON_REF = (
    rf"(?:of|for|does|do|did) (?!{_DETERMINER} )(?!{_ORGANISATIONAL})\w+|"
    rf"(?:of|for|does|do|did) {_DETERMINER} (?!{_ORGANISATIONAL})\w+|\w+'s"
)
_PERSONAL_REQUEST = re.compile(
    rf"\b{_PERSONAL}\b|\b{_OF_PERSON}\b\s+(?:{_PERSON_REF})|(?:{_PERSON_REF})\s+{_OF_PERSON}\b",
    re.IGNORECASE,
)
_EARNINGS = re.compile(r"\bhow much (?:does|do|did) .{1,60}\b(?:earn|make|get paid)\b", re.I)
_PERSON = r"(?:my|our|the|a|his|her|their) (?:co-?workers?|colleagues?|boss|manager|employees?|staff|team ?mates?)"
_ABOUT_PERSON = re.compile(
    rf"\b(?:medication|diagnosis|illness|sick(?:ness)? leave|performance reviews?|appraisals?)\b.{{0,40}}"
    rf"\b{_PERSON}\b|\b{_PERSON}\b.{{0,40}}\b(?:medication|diagnosis|illness|sick(?:ness)? leave|"
    rf"performance reviews?|appraisals?)\b|\bwhere does .{{1,40}}\blive\b|\bwhich employees\b",
    re.IGNORECASE,
)
_ACTION = re.compile(
    r"^\s*(?:please\s+)?(?:transfer|wire|pay|refund|approve|reject|delete|remove|grant|revoke|"
    r"book|order|purchase|buy me|cancel|reset|change|update|send)\b"
    r"(?!.*\b(?:how|why|when|what|which)\b).*\b(?:me|my|account|access|money|euros?|dollars?|"
    r"pounds?|payment|claim|record|password|salary|flight|order|invoice|permissions?)\b",
    re.IGNORECASE,
)
_ORG_CHART = re.compile(r"\bwho (?:is|are|was) (?:my|our)\b", re.IGNORECASE)


@dataclass(frozen=True)
class PolicyRefusal:
    category: str  # secret | personal_data | action | organisation
    reason: str


def sensitive_request(question: str) -> PolicyRefusal | None:
    """The rule the request falls under, or None for a question to answer from the documents."""
    text = " ".join(question.split())
    how_to = bool(_HOW_TO.match(text))
    if not how_to and _SECRET_REQUEST.search(text):
        return PolicyRefusal("secret", "asks for the value of a secret or credential")
    personal = (not how_to and _PERSONAL_REQUEST.search(text)) or _ABOUT_PERSON.search(text)
    if personal or _EARNINGS.search(text):
        return PolicyRefusal("personal_data", "asks for personal data about a person")
    if _ACTION.search(text):
        return PolicyRefusal("action", "asks the assistant to act, which it cannot do")
    if _ORG_CHART.search(text):
        return PolicyRefusal("organisation", "asks who someone in the asker's organisation is")
    return None
