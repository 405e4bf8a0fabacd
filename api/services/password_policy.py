"""Which passwords privatune accepts, in the spirit of NIST SP 800-63B: long enough, not easily
guessed, not made of the person's own name or address. No composition rules (a digit, a symbol):
they make passwords harder to remember, not harder to guess. Spaces and any Unicode are welcome."""

from __future__ import annotations

import re
import threading
import unicodedata

from zxcvbn import zxcvbn

MIN_LENGTH = 12
# Long passphrases are welcome; the ceiling only bounds the work one request can cause.
MAX_LENGTH = 1024
# zxcvbn's matching grows faster than quadratically with length (here: 60 ms at 100 characters,
# 210 ms at 200, 860 ms at 400), so only the first 100 characters are scored. A password whose
# first 100 characters are strong is strong; one whose first 100 are weak is refused.
ZXCVBN_MAX_CHARS = 100
MIN_ZXCVBN_SCORE = 3  # "safely unguessable: moderate protection from offline slow-hash scenario"
MIN_LOCAL_PART_LENGTH = 3

# zxcvbn keeps the user inputs of the call in a module-level dictionary: two threads scoring at
# once would each check against the other's inputs.
_zxcvbn_lock = threading.Lock()


class WeakPassword(ValueError):
    """The password is refused; `problems` lists each reason, the message says what to change."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Choose another password. " + " ".join(problems))


def check_password(password: str, email: str, display_name: str | None = None) -> None:
    """Accept the password for this person, or raise WeakPassword saying why not."""
    text = unicodedata.normalize("NFKC", password)
    problems: list[str] = []
    if len(text) < MIN_LENGTH:
        problems.append(
            f"Use at least {MIN_LENGTH} characters (this one has {len(text)}); "
            "a few unrelated words make a long password that is easy to remember."
        )
    if len(text) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters (this one has {len(text)}).")
    local_part = email.rpartition("@")[0] if "@" in email else email
    folded_local = unicodedata.normalize("NFKC", local_part).casefold()
    if len(folded_local) >= MIN_LOCAL_PART_LENGTH and folded_local in text.casefold():
        problems.append("Do not include your e-mail address or the name before its @.")
    if text:
        problems.extend(
            _strength_problems(text[:ZXCVBN_MAX_CHARS], email, local_part, display_name)
        )
    if problems:
        raise WeakPassword(problems)


def _strength_problems(
    text: str, email: str, local_part: str, display_name: str | None
) -> list[str]:
    inputs = [email, local_part, *_words(local_part)]
    if display_name:
        inputs += [display_name, *_words(display_name)]
    with _zxcvbn_lock:
        result = zxcvbn(text, user_inputs=inputs, max_length=ZXCVBN_MAX_CHARS)
    if result["score"] >= MIN_ZXCVBN_SCORE:
        return []
    feedback = result["feedback"]
    advice = [feedback["warning"]] if feedback["warning"] else []
    advice += feedback["suggestions"]
    return ["It is too easy to guess.", *advice]


def _words(text: str) -> list[str]:
    """The parts of a name or local part ("ada.lovelace" -> "ada", "lovelace"), so that zxcvbn
    recognises each of them inside a password."""
    return [w for w in re.split(r"[\W_]+", text) if len(w) >= MIN_LOCAL_PART_LENGTH]
