from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from assets.dataset.prompt import ContextPassage, build_messages
from assets.training.trainer import encode_example


@pytest.fixture(scope="module")
def tokenizer(base_model_path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model_path)


def _messages(answer: str, question: str = "How many days of annual leave do I get?") -> list:
    passages = [
        ContextPassage("leave.md, page 1", "Employees get 25 days of annual leave per year."),
        ContextPassage("canteen.md, page 2", "The canteen opens at 08:00."),
    ]
    return build_messages(question, passages, answer=answer)


ANSWERS = [
    "You get 25 days of annual leave per year.",
    "25",
    "The canteen at Cambridge HQ is open from 08:00 to 14:30, Monday to Friday.",
    "Café prices: 2,50 € — see the “menu”.",
    "Line one.\nLine two.",
]


@pytest.mark.parametrize("answer", ANSWERS)
def test_labels_mask_the_prompt_and_keep_the_answer(tokenizer: Any, answer: str) -> None:
    messages = _messages(answer)
    encoded = encode_example(tokenizer, messages, max_length=512)
    assert encoded is not None
    ids, labels = encoded["input_ids"], encoded["labels"]
    assert len(ids) == len(labels)

    prompt = tokenizer.apply_chat_template(
        messages[:-1], add_generation_prompt=True, tokenize=False
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    n = len(prompt_ids)
    # The whole prompt (system, context, question, assistant header) is masked ...
    assert ids[:n] == prompt_ids
    assert labels[:n] == [-100] * n
    # ... and everything after it is learnt, token for token.
    assert len(ids) > n
    assert labels[n:] == ids[n:]
    assert -100 not in labels[n:]

    learnt = tokenizer.decode(labels[n:])
    assert learnt.startswith(answer)
    assert answer in tokenizer.decode([t for t in labels if t != -100])
    # The end-of-turn token is learnt too, so the model learns to stop.
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn in labels[n:]
    # Nothing of the question or the context is learnt.
    assert "annual leave do I get" not in learnt
    assert "canteen opens" not in learnt


def test_full_sequence_is_the_chat_template(tokenizer: Any) -> None:
    messages = _messages(ANSWERS[0])
    encoded = encode_example(tokenizer, messages, max_length=512)
    assert encoded is not None
    assert tokenizer.decode(encoded["input_ids"]) == tokenizer.apply_chat_template(
        messages, tokenize=False
    )


def test_none_when_longer_than_max_length(tokenizer: Any) -> None:
    messages = _messages(ANSWERS[0])
    length = len(encode_example(tokenizer, messages, max_length=10_000)["input_ids"])
    assert encode_example(tokenizer, messages, max_length=length) is not None
    assert encode_example(tokenizer, messages, max_length=length - 1) is None
    assert encode_example(tokenizer, messages, max_length=8) is None


def test_long_context_is_dropped_not_truncated(tokenizer: Any) -> None:
    passages = [ContextPassage("big.txt, page 1", "word " * 2000)]
    messages = build_messages("Q?", passages, answer="A.")
    assert encode_example(tokenizer, messages, max_length=512) is None


class _FakeTokenizer:
    """Character-level tokenizer with a configurable chat template."""

    def __init__(self, extends: bool = True) -> None:
        self.extends = extends

    def apply_chat_template(
        self, messages: list[dict], add_generation_prompt: bool = False, tokenize: bool = False
    ) -> str:
        text = "".join(f"<{m['role']}>{m['content']}" for m in messages)
        if add_generation_prompt:
            text += "<assistant>" if self.extends else "<assistant-turn>"
        return text

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": [ord(c) for c in text]}


def test_template_that_does_not_extend_the_prompt_is_an_error() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
    ]
    with pytest.raises(ValueError, match="does not extend"):
        encode_example(_FakeTokenizer(extends=False), messages, max_length=100)


def test_fake_tokenizer_labels() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "ans"},
    ]
    encoded = encode_example(_FakeTokenizer(), messages, max_length=100)
    prompt_len = len("<user>q<assistant>")
    assert encoded["labels"] == [-100] * prompt_len + [ord(c) for c in "ans"]
    assert encode_example(_FakeTokenizer(), messages, max_length=prompt_len + 2) is None


def test_empty_answer_is_none() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": ""},
    ]
    # The fake template adds nothing after the generation prompt for an empty answer.
    assert encode_example(_FakeTokenizer(), messages, max_length=100) is None
