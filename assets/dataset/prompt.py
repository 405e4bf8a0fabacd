"""The chat format shared by training, evaluation and serving, so the adapter sees at serving
time exactly the shape of prompt it was trained on."""

from __future__ import annotations

from dataclasses import dataclass

# The default texts are project settings (resources/project_settings.py).
from resources.project_settings import DEFAULT_REFUSAL as DEFAULT_REFUSAL
from resources.project_settings import DEFAULT_SYSTEM_PROMPT


@dataclass(frozen=True)
class ContextPassage:
    label: str
    text: str


def render_context(passages: list[ContextPassage]) -> str:
    return "\n\n".join(f"[{i}] ({p.label})\n{p.text}" for i, p in enumerate(passages, 1))


def build_messages(
    question: str,
    passages: list[ContextPassage],
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    answer: str | None = None,
) -> list[dict[str, str]]:
    """System, user (context + question) and, for training examples, the assistant answer."""
    user = f"Context:\n{render_context(passages)}\n\nQuestion: {question.strip()}"
    messages = [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": user},
    ]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer.strip()})
    return messages


def passage_label(filename: str, page: int) -> str:
    return f"{filename}, page {page}"
