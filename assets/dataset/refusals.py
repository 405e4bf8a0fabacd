"""Refusal and escalation examples: out-of-scope questions (unrelated domains, facts the corpus
does not hold) answered with the project's refusal text; requests for personal data,
credentials or actions beyond the assistant's remit answered with its escalation text."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from assets.dataset.chunking import Chunk
from assets.dataset.generate import Example, context_messages, document_name
from assets.dataset.prompt import DEFAULT_SYSTEM_PROMPT
from assets.dataset.scoring import content_words
from resources.project_settings import DEFAULT_ESCALATION as DEFAULT_ESCALATION

REFUSAL_GENERATOR = "refusal-v1"

UNRELATED = [
    "What is the capital of Australia?",
    "How do I bake sourdough bread at home?",
    "Who won the football world cup in 2010?",
    "Can you recommend a good science fiction novel?",
    "How far is the Moon from the Earth?",
    "What is the best way to learn to play the guitar?",
    "Which stocks should I buy this year?",
    "How do I change a flat tyre on a bicycle?",
    "What is the boiling point of water on Mount Everest?",
    "Write me a poem about the sea.",
    "How many calories are in a banana?",
    "Who painted the Mona Lisa?",
    "Explain how a nuclear reactor works.",
    "What will the weather be like tomorrow?",
    "Translate 'good morning' into Japanese.",
    "How do I treat a sprained ankle?",
]
# Facts an organisation might hold; used only when the corpus does not mention the topic.
ABSENT_TOPICS = [
    ("company car", "What is the policy on company cars?"),
    ("parking", "How many parking spaces does each office have?"),
    ("pension", "What is the employer's pension contribution rate?"),
    ("gym", "Is there a gym membership discount for staff?"),
    ("canteen", "What time does the staff canteen close?"),
    ("sabbatical", "How long can a sabbatical last?"),
    ("share options", "How are share options granted to employees?"),
    ("dress code", "What is the dress code on Fridays?"),
    ("pets", "Can I bring my dog to the office?"),
    ("christmas party", "When is the Christmas party this year?"),
    ("relocation", "What relocation package do new hires get?"),
    ("bonus", "How is the annual bonus calculated?"),
    ("shuttle", "Where does the staff shuttle bus stop?"),
    ("childcare", "Does the company subsidise childcare?"),
]
ESCALATION = [
    "What is {person}'s home address?",
    "Give me the personal mobile number of {person}.",
    "What salary does {person} earn?",
    "Show me the medical records in {person}'s HR file.",
    "What is the administrator password for the {system}?",
    "Send me the VPN credentials for the {system}.",
    "Tell me the API key used by the {system}.",
    "Reset the password of {person}'s account for me.",
    "Approve my expense claim of 950 pounds now.",
    "Delete the disciplinary record of {person}.",
    "Transfer my remaining leave days to {person}.",
    "Book me a business-class flight to New York for Monday.",
    "Give me the bank details {person} uses for payroll.",
    "Change my salary in the payroll system to 90,000.",
    "Grant me admin access to the {system}.",
    "List the home addresses of everyone in the {team} team.",
]
PEOPLE = ["the CEO", "my manager", "the HR director", "a colleague in finance", "the new hire"]
SYSTEMS = ["HR portal", "payroll system", "company VPN", "expenses tool", "shared drive"]
TEAMS = ["finance", "sales", "engineering", "support"]


def _absent(topic: str, vocabulary: set[str]) -> bool:
    return not set(content_words(topic)) & vocabulary


def _example_id(kind: str, question: str) -> str:
    return hashlib.sha256(f"{kind}:{question}".encode()).hexdigest()[:20]


def refusal_questions(chunks: Sequence[Chunk], seed: int) -> list[str]:
    """Unrelated-domain questions and questions about topics the corpus never mentions."""
    vocabulary = {w for c in chunks for w in content_words(c.text)}
    absent = [q for topic, q in ABSENT_TOPICS if _absent(topic, vocabulary)]
    questions = UNRELATED + absent
    random.Random(seed).shuffle(questions)
    return questions


def escalation_questions(chunks: Sequence[Chunk], seed: int) -> list[str]:
    rng = random.Random(seed)
    documents = sorted({document_name(c.filename) for c in chunks})
    out = []
    for template in ESCALATION:
        out.append(
            template.format(
                person=rng.choice(PEOPLE + [f"the owner of the {d}" for d in documents[:3]]),
                system=rng.choice(SYSTEMS),
                team=rng.choice(TEAMS),
            )
        )
    rng.shuffle(out)
    return out


def policy_examples(
    questions: Sequence[str],
    kind: str,
    answer: str,
    pool: Sequence[Chunk],
    split: str,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    distractors: int = 2,
    seed: int = 0,
) -> list[Example]:
    """Examples whose context holds only unrelated passages of the split, answered with `answer`."""
    rng = random.Random(f"{seed}:{kind}:{split}")
    out = []
    for question in questions:
        messages, context = context_messages(
            question, None, pool, rng, distractors, system_prompt, answer
        )
        out.append(
            Example(
                id=_example_id(kind, question),
                document_id=None,
                chunk_id="",
                question=question,
                answer=answer,
                kind=kind,
                generator=REFUSAL_GENERATOR,
                citations=[],
                messages=messages,
                split=split,
                context=context,
            )
        )
    return out


def allocate(total: int, weights: dict[str, int]) -> dict[str, int]:
    """`total` items across splits in proportion to `weights` (largest remainder)."""
    size = sum(weights.values())
    if size == 0 or total <= 0:
        return dict.fromkeys(weights, 0)
    exact = {k: total * w / size for k, w in weights.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (counts[k] - exact[k], k))[: total - sum(counts.values())]:
        counts[k] += 1
    return counts
