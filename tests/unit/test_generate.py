from __future__ import annotations

import re

import pytest

from assets.dataset.chunking import Chunk, chunk_pages
from assets.dataset.generate import (
    GENERATOR,
    Example,
    QAPair,
    build_examples,
    first_of_each_id,
    generate_examples,
    qa_pairs,
)
from assets.dataset.prompt import DEFAULT_SYSTEM_PROMPT


def _chunk(
    text: str,
    heading: list[str] | None = None,
    document_id: str = "doc-1",
    filename: str = "handbook.md",
    page: int = 1,
    start: int = 0,
) -> Chunk:
    return Chunk(
        id=f"{document_id}-{page}-{start}",
        document_id=document_id,
        filename=filename,
        page=page,
        start=start,
        end=start + len(text),
        heading=heading or [],
        text=text,
    )


# --- qa_pairs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "**Q: How many days of leave do I get?**\nA: You get 25 days of annual leave.",
            [QAPair("How many days of leave do I get?", "You get 25 days of annual leave.", "faq")],
            id="bold-question",
        ),
        pytest.param(
            "Q: Where is the canteen?\nA: On the ground floor.",
            [QAPair("Where is the canteen?", "On the ground floor.", "faq")],
            id="plain",
        ),
        pytest.param(
            "Question: Can I bring my dog?\n\nAnswer: Only on Fridays.",
            [QAPair("Can I bring my dog?", "Only on Fridays.", "faq")],
            id="long-form-blank-line",
        ),
        pytest.param(
            "**Q: First?**\nA: One.\n**Q: Second?**\nA: Two.",
            [QAPair("First?", "One.", "faq"), QAPair("Second?", "Two.", "faq")],
            id="two-entries",
        ),
        pytest.param("Q: Unanswered question?\n", [], id="no-answer"),
    ],
)
def test_faq_pairs(text: str, expected: list[QAPair]) -> None:
    assert qa_pairs(_chunk(text)) == expected


def test_faq_lines_are_not_also_read_as_facts() -> None:
    pairs = qa_pairs(_chunk("Q: What is the Wi-Fi called?\nA: Acme-Guest."))
    assert [p.kind for p in pairs] == ["faq"]


@pytest.mark.parametrize(
    ("line", "question", "answer"),
    [
        pytest.param(
            "Annual leave: 25 days per year.",
            "What is the annual leave in the handbook?",
            "The annual leave is 25 days per year.",
            id="singular",
        ),
        pytest.param(
            "Office hours: 08:00 to 18:00",
            "What are the office hours in the handbook?",
            "The office hours are 08:00 to 18:00.",
            id="plural",
        ),
        pytest.param(
            "- Business address: 14 Innovation Way",
            "What is the business address in the handbook?",
            "The business address is 14 Innovation Way.",
            id="list-item-ss-is-singular",
        ),
        pytest.param(
            "VPN client: WireGuard",
            "What is the VPN client in the handbook?",
            "The VPN client is WireGuard.",
            id="acronym-kept",
        ),
        pytest.param(
            "**Support email:** help@acme.example",
            "What is the support email in the handbook?",
            "The support email is help@acme.example.",
            id="bold-key",
        ),
    ],
)
def test_key_value_facts(line: str, question: str, answer: str) -> None:
    assert qa_pairs(_chunk(line)) == [QAPair(question, answer, "fact")]


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("lowercase key: value here", id="lowercase-key"),
        pytest.param("# Heading: with colon", id="heading"),
        pytest.param("Just a sentence without a colon.", id="no-colon"),
    ],
)
def test_lines_that_are_not_facts(line: str) -> None:
    assert qa_pairs(_chunk(line)) == []


def test_table_row_gives_one_question_per_column() -> None:
    pairs = qa_pairs(_chunk("office: Cambridge HQ; city: Cambridge; country: United Kingdom"))
    assert pairs == [
        QAPair(
            "What is the city for office Cambridge HQ?",
            "The city for office Cambridge HQ is Cambridge.",
            "table",
        ),
        QAPair(
            "What is the country for office Cambridge HQ?",
            "The country for office Cambridge HQ is United Kingdom.",
            "table",
        ),
    ]


def test_table_row_questions_are_capped_at_three() -> None:
    line = "office: Leeds; city: Leeds; country: UK; phone: 0113; manager: Priya; floor: 3"
    pairs = qa_pairs(_chunk(line))
    assert [p.question for p in pairs] == [
        "What is the city for office Leeds?",
        "What is the country for office Leeds?",
        "What is the phone for office Leeds?",
    ]
    assert {p.kind for p in pairs} == {"table"}


def test_table_row_value_with_colons_and_empty_values() -> None:
    line = "office: Leeds; opening hours: Mon-Fri 07:30-19:00; fax: ; city: Leeds"
    pairs = qa_pairs(_chunk(line))
    assert [p.answer for p in pairs] == [
        "The opening hours for office Leeds is Mon-Fri 07:30-19:00.",
        "The city for office Leeds is Leeds.",
    ]


def test_every_row_of_a_table_chunk_is_used() -> None:
    text = "\n".join(f"office: O{i}; city: C{i}; country: K{i}" for i in range(4))
    pairs = qa_pairs(_chunk(text))
    assert len(pairs) == 8
    assert {p.answer for p in pairs} >= {f"The city for office O{i} is C{i}." for i in range(4)}


def test_table_column_names_with_underscores_become_words() -> None:
    line = "office: Cambridge HQ; reception_phone: +44 1632 960 300; office_manager: Rachel Dunmore"
    pairs = qa_pairs(_chunk(line))
    assert [p.question for p in pairs] == [
        "What is the reception phone for office Cambridge HQ?",
        "What is the office manager for office Cambridge HQ?",
    ]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Support email: help_desk@acme.example", id="fact"),
        pytest.param(
            "office: Leeds; email: leeds_office@acme.example; city: Leeds", id="table-row"
        ),
    ],
)
def test_answers_keep_underscores_of_the_source(text: str) -> None:
    pairs = qa_pairs(_chunk(text))
    assert pairs
    assert any("_" in p.answer for p in pairs)
    assert re.search(r"\w+_\w+@acme\.example", pairs[0].answer)


def test_two_column_row_is_a_table_row_not_one_fact() -> None:
    pairs = qa_pairs(_chunk("Name: Alice Smith; Phone: +44 1632 960 001"))
    assert [(p.kind, p.question, p.answer) for p in pairs] == [
        (
            "table",
            "What is the Phone for Name Alice Smith?",
            "The Phone for Name Alice Smith is +44 1632 960 001.",
        )
    ]


def test_section_fallback_when_nothing_else() -> None:
    text = (
        "## Remote work\n\n"
        "Employees may work from home up to three days a week. "
        "Managers approve remote work requests in the HR portal. "
        "A third sentence is never used."
    )
    pairs = qa_pairs(_chunk(text, heading=["Policies", "Remote work"], filename="remote.html"))
    assert pairs == [
        QAPair(
            "What does the remote say about remote work?",
            "Employees may work from home up to three days a week. "
            "Managers approve remote work requests in the HR portal.",
            "section",
        )
    ]


@pytest.mark.parametrize(
    ("line", "question", "answer", "kind"),
    [
        pytest.param(
            "MFA: multi-factor authentication, a second sign-in step.",
            "What does MFA mean?",
            "MFA means multi-factor authentication, a second sign-in step.",
            "definition",
            id="definition",
        ),
        pytest.param(
            "Applies to: all employees and contractors.",
            "What does the handbook state under 'Applies to'?",
            "Applies to all employees and contractors.",
            "fact",
            id="key-ending-in-preposition",
        ),
        pytest.param(
            "Phishing reports: phishing@acme.example",
            "What are the phishing reports in the handbook?",
            "The phishing reports are phishing@acme.example.",
            "fact",
            id="lowercase-value-that-is-not-a-phrase",
        ),
    ],
)
def test_definitions_and_odd_keys(line: str, question: str, answer: str, kind: str) -> None:
    assert qa_pairs(_chunk(line)) == [QAPair(question, answer, kind)]


def test_section_topic_drops_numbering_and_names_the_document() -> None:
    text = "## 4. Booking travel\n\nAll business flights must be booked through the travel desk."
    pairs = qa_pairs(
        _chunk(text, heading=["4. Booking travel"], filename="expenses-and-travel-policy.docx")
    )
    assert [p.question for p in pairs] == [
        "What does the expenses and travel policy say about booking travel?"
    ]


def test_section_fallback_only_when_no_other_pair() -> None:
    text = "Employees may work from home up to three days a week.\nAnnual leave: 25 days"
    pairs = qa_pairs(_chunk(text, heading=["Leave"]))
    assert [p.kind for p in pairs] == ["fact"]


@pytest.mark.parametrize(
    ("text", "heading"),
    [
        pytest.param("Employees may work from home three days a week.", [], id="no-heading"),
        pytest.param("## Title\n\nToo short.", ["Title"], id="short-sentences-only"),
        pytest.param("## Title", ["Title"], id="heading-only"),
    ],
)
def test_no_pairs(text: str, heading: list[str]) -> None:
    assert qa_pairs(_chunk(text, heading=heading)) == []


# --- generate_examples ------------------------------------------------------


def _corpus() -> list[Chunk]:
    leave = chunk_pages(
        "doc-leave",
        "leave.md",
        [
            {
                "number": 1,
                "text": "# Leave\n\n**Q: How many days of leave do I get?**\nA: 25 days.\n\n"
                "Carry over limit: 5 days\n\n"
                "Notice period: two weeks",
            }
        ],
        max_chars=60,
    )
    offices = chunk_pages(
        "doc-offices",
        "offices.csv",
        [
            {
                "number": 1,
                "text": "office: Leeds; city: Leeds; country: UK\n"
                "office: Paris; city: Paris; country: France",
            }
        ],
    )
    security = chunk_pages(
        "doc-security",
        "security.pdf",
        [
            {"number": 1, "text": "# Passwords\n\nPasswords are rotated every ninety days."},
            {"number": 2, "text": "Screen lock timeout: 5 minutes"},
        ],
    )
    return leave + offices + security


def test_examples_carry_citations_document_and_chat_messages() -> None:
    chunks = _corpus()
    by_id = {c.id: c for c in chunks}
    examples = generate_examples(chunks, seed=1)
    assert len(examples) == sum(len(qa_pairs(c)) for c in chunks)
    assert {e.kind for e in examples} >= {"faq", "fact", "table", "section"}
    for e in examples:
        chunk = by_id[e.chunk_id]
        assert e.citations == [chunk.id]
        assert e.document_id == chunk.document_id
        assert e.generator == GENERATOR
        assert [m["role"] for m in e.messages] == ["system", "user", "assistant"]
        system, user, assistant = (m["content"] for m in e.messages)
        assert system == DEFAULT_SYSTEM_PROMPT
        assert chunk.text in user
        assert f"({chunk.filename}, page {chunk.page})" in user
        assert user.rstrip().endswith(f"Question: {e.question}")
        assert assistant == e.answer
        assert (e.question, e.answer, e.kind) in {
            (p.question, p.answer, p.kind) for p in qa_pairs(chunk)
        }
    ids = [e.id for e in examples]
    assert len(set(ids)) == len(ids)


def test_custom_system_prompt() -> None:
    examples = generate_examples(_corpus(), system_prompt="Be brief.")
    assert {e.messages[0]["content"] for e in examples} == {"Be brief."}


def test_deterministic_for_a_seed() -> None:
    chunks = _corpus()
    a = generate_examples(chunks, distractors=2, seed=7)
    b = generate_examples(chunks, distractors=2, seed=7)
    assert [e.to_dict() for e in a] == [e.to_dict() for e in b]


def test_seed_changes_context_but_not_content() -> None:
    chunks = _corpus()
    runs = [generate_examples(chunks, distractors=2, seed=s) for s in range(6)]
    contents = {tuple((e.id, e.question, e.answer) for e in run) for run in runs}
    assert len(contents) == 1  # the pairs do not depend on the seed
    users = {tuple(e.messages[1]["content"] for e in run) for run in runs}
    assert len(users) > 1  # the distractors / their order do


def _passages(user: str) -> list[str]:
    context = user.split("Context:\n", 1)[1].rsplit("\n\nQuestion: ", 1)[0]
    return [p.split("\n", 1)[1] for p in re.split(r"\n\n(?=\[\d+\] \()", context) if p.strip()]


@pytest.mark.parametrize("distractors", [0, 1, 2, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distractors_come_from_other_documents_only(distractors: int, seed: int) -> None:
    chunks = _corpus()
    by_text = {c.text: c for c in chunks}
    for e in generate_examples(chunks, distractors=distractors, seed=seed):
        passages = _passages(e.messages[1]["content"])
        sources = [by_text[p] for p in passages]
        others = [c for c in chunks if c.document_id != e.document_id]
        assert len(passages) == 1 + min(distractors, len(others))
        assert [c.id for c in sources].count(e.chunk_id) == 1
        for c in sources:
            if c.id != e.chunk_id:
                assert c.document_id != e.document_id
        assert len({c.id for c in sources}) == len(sources)


def test_single_document_has_no_distractors() -> None:
    chunks = [c for c in _corpus() if c.document_id == "doc-leave"]
    for e in generate_examples(chunks, distractors=3):
        assert len(_passages(e.messages[1]["content"])) == 1


def test_no_chunks_no_examples() -> None:
    assert generate_examples([]) == []


def test_example_to_dict() -> None:
    e = generate_examples(_corpus())[0]
    assert Example(**e.to_dict()) == e


def test_a_question_read_twice_from_one_chunk_is_one_example() -> None:
    """Two lines with the same key gave two examples with one id, and the dataset's unique key
    failed the run."""
    chunk = _chunk("Owner: IT team\nOwner: Facilities")
    pairs = [qa_pairs(chunk)]
    assert len(pairs[0]) == 2 and pairs[0][0].question == pairs[0][1].question

    made = build_examples([chunk], pairs, GENERATOR)

    assert len(made) == 1 and made[0].answer == pairs[0][0].answer
    twice = first_of_each_id(made + build_examples([chunk], pairs, "other-generator"))
    assert [e.id for e in twice] == [made[0].id]


def test_reference_entries_give_what_it_is_and_its_facts_quoted() -> None:
    text = (
        "#### gc.autoPackLimit\n\nWhen there are more than this many packs in the repository, "
        "git gc --auto consolidates them into one larger pack. The default value is 50. "
        "Setting this to 0 disables it."
    )
    pairs = qa_pairs(_chunk(text, heading=["Variables", "gc.autoPackLimit"]))
    assert pairs[0] == QAPair(
        "What is gc.autoPackLimit?",
        "gc.autoPackLimit: When there are more than this many packs in the repository, "
        "git gc --auto consolidates them into one larger pack.",
        "entry",
    )
    assert (
        QAPair(
            "What is the default for gc.autoPackLimit?",
            "gc.autoPackLimit: The default value is 50.",
            "fact",
        )
        in pairs
    )
    option = qa_pairs(
        _chunk("#### -f, --force\n\nAllow adding ignored files.", heading=["-f, --force"])
    )
    assert option == [
        QAPair(
            "What does the -f, --force option do?",
            "-f, --force: Allow adding ignored files.",
            "entry",
        )
    ]


@pytest.mark.parametrize("heading", ["OpenMP Support", "SYNOPSIS", "2.7 Other Options"])
def test_topic_headings_are_sections_not_entries(heading: str) -> None:
    pairs = qa_pairs(
        _chunk(f"## {heading}\n\nThere are many other options listed here.", [heading])
    )
    assert [p.kind for p in pairs] == ["section"]
