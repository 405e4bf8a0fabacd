"""Which uploaded files may go on to a parser: decided from their content, not their name."""

from __future__ import annotations

from assets.normalization.sniff import DOC_TYPES, declared_type

# Text formats share their bytes; the name may legitimately pick among them.
_TEXT_FAMILY = frozenset({"txt", "md", "csv"})


def admission_problem(detected: str, filename: str) -> str | None:
    """A quarantine reason (`code: message`), or None when the file may be parsed."""
    if detected == "empty":
        return "empty: the file is empty; upload it again with its content"
    if detected not in DOC_TYPES:
        return (
            "unsupported_type: the content is not PDF, DOCX, HTML, Markdown, text or CSV "
            f"(detected {detected}); convert it to one of these formats"
        )
    declared = declared_type(filename)
    if declared is None or declared == detected:
        return None
    if declared in _TEXT_FAMILY and detected in _TEXT_FAMILY:
        return None
    return (
        f"type_mismatch: the name says {declared} but the content is {detected}; "
        "rename the file to match its content or upload the right file"
    )
