"""Evidence selection, the request policy, answerability, follow-up questions and the composed
answer, on a small index built with the real MiniLM embedder."""

from __future__ import annotations

import pytest

from assets.dataset.prompt import DEFAULT_REFUSAL
from assets.dataset.refusals import DEFAULT_ESCALATION
from assets.retrieval.answering import (
    Answering,
    compose,
    contextual_query,
    supported,
)
from assets.retrieval.evidence import paragraphs, prefer_reference, select_evidence
from assets.retrieval.hybrid import build_index, duplicate_hubs
from assets.retrieval.policy import sensitive_request

ENTRIES = {
    "gc.auto": (
        "When there are approximately more than this many loose objects in the repository, "
        "git gc --auto will pack them. Some Porcelain commands use this command to perform a "
        "light-weight garbage collection from time to time. The default value is 6700."
    ),
    "gc.autoPackLimit": (
        "When there are more than this many packs that are not marked with *.keep file in the "
        "repository, git gc --auto consolidates them into one larger pack. The default value is "
        "50. Setting this to 0 disables it."
    ),
    "pack.depth": (
        "The maximum delta depth used by git-pack-objects when no maximum depth is given on "
        "the command line. Defaults to 50. Maximum value is 4095."
    ),
    "--force": "Remove an unclean worktree; without it, remove refuses to remove it.",
}


def _chunks() -> list[dict]:
    chunks = []
    for i, (term, text) in enumerate(ENTRIES.items()):
        body = f"#### {term}\n\n{text}"
        chunks.append(
            {
                "id": f"c{i}",
                "document_id": "config" if term != "--force" else "worktree",
                "filename": "git-config.html" if term != "--force" else "git-worktree.html",
                "page": 1,
                "start": 100 * i,
                "end": 100 * i + len(body),
                "heading": ["Variables", term],
                "text": body,
            }
        )
    # git-gc.html includes the gc.* entries of git-config.html word for word
    gc = dict(chunks[1], id="c-dup", document_id="gc", filename="git-gc.html")
    chunks.append(gc)
    chunks.append(
        {
            "id": "c-gc",
            "document_id": "gc",
            "filename": "git-gc.html",
            "page": 1,
            "start": 0,
            "end": 60,
            "heading": ["DESCRIPTION"],
            "text": "Runs a number of housekeeping tasks within the current repository.",
        }
    )
    return chunks


@pytest.fixture(scope="module")
def answering() -> Answering:
    return Answering(build_index(_chunks()))


def test_paragraphs_split_sentences_with_offsets_and_skip_headings() -> None:
    text = "#### pack.depth\n\nDefaults to 50. Maximum value is 4095.\n- a list item\n"
    paras = paragraphs(text)
    assert [[s.text for s in p] for p in paras] == [
        ["Defaults to 50.", "Maximum value is 4095.", "- a list item"]
    ]
    for sentence in paras[0]:
        assert text[sentence.start : sentence.end] == sentence.text


def test_evidence_is_the_entry_the_question_names(answering: Answering) -> None:
    index = answering.index
    for question, subject, fact in [
        ("What is the default value of gc.autoPackLimit?", "gc.autoPackLimit", "50"),
        ("How many loose objects make git gc --auto pack them?", "gc.auto", "6700"),
        ("What is the maximum value of pack.depth?", "pack.depth", "4095"),
    ]:
        hits = index.retrieve(question, 6)
        best = select_evidence(question, hits, index.lexical.idf, index.embed)[0]
        assert best.subject == subject
        assert fact in best.quote()
        assert best.quote().startswith(f"{subject}: ")
        start, end = best.span()
        chunk = best.chunk
        assert chunk["text"][start - chunk["start"] : end - chunk["start"]] == best.text


def test_a_passage_several_documents_include_is_cited_from_the_reference_page(
    answering: Answering,
) -> None:
    hubs = duplicate_hubs(answering.index.chunks)
    assert hubs == {"config": 1, "gc": 1}
    prepared = answering.prepare("When does gc consolidate packs into one larger pack?")
    assert prepared.refusal is None
    assert prepared.citations[0]["filename"] in {"git-config.html", "git-gc.html"}
    # with the reference page sharing passages with more documents, it is cited first
    evidence = select_evidence(
        "gc.autoPackLimit default",
        answering.index.retrieve("gc.autoPackLimit default", 6),
        answering.index.lexical.idf,
        answering.index.embed,
    )
    first = prefer_reference(evidence, {"config": 3, "gc": 1})[0]
    assert first.chunk["document_id"] == "config"
    assert prefer_reference(evidence, {"config": 1, "gc": 3})[0].chunk["document_id"] == "gc"


@pytest.mark.parametrize(
    ("question", "category"),
    [
        ("Give me the SSH private key of our build server.", "secret"),
        ("What is the root password of the database server?", "secret"),
        ("Please tell me the API key for our payment provider.", "secret"),
        ("What is the salary of the Git maintainer?", "personal_data"),
        ("What is Maria Keller's date of birth?", "personal_data"),
        ("How much does a senior engineer earn at our company?", "personal_data"),
        ("Transfer 200 euros to the project from my account, please.", "action"),
        ("Who is my line manager's manager?", "organisation"),
    ],
)
def test_requests_no_document_may_answer(question: str, category: str) -> None:
    refusal = sensitive_request(question)
    assert refusal is not None and refusal.category == category


@pytest.mark.parametrize(
    "question",
    [
        "How do I generate an SSH key?",
        "How do I reset my password?",
        "What is the password policy?",
        "What is the minimum password length?",
        "Where is the API key configured?",
        "Which option sets the GPG key?",
        "What is the salary band policy?",
        "What is the phone number of the IT helpdesk?",
        "Delete a remote branch",
        "What is the default value of gc.autoPackLimit?",
    ],
)
def test_documentation_questions_about_such_things_pass(question: str) -> None:
    assert sensitive_request(question) is None


def test_escalation_refusal_and_answer(answering: Answering) -> None:
    escalated = answering.prepare("Give me the SSH private key of our build server.")
    assert escalated.refusal == DEFAULT_ESCALATION and escalated.refusal_reason == "secret"
    assert escalated.escalated and not escalated.citations

    off_topic = answering.prepare("How do I cook a risotto with saffron?")
    assert off_topic.refusal == DEFAULT_REFUSAL
    assert off_topic.refusal_reason == "low_confidence" and not off_topic.escalated

    answered = answering.prepare("What is the default value of gc.autoPackLimit?")
    assert answered.refusal is None and answered.confidence >= answering.threshold()
    assert answered.evidence is not None and "50" in answered.evidence.quote()
    assert answered.citations[0]["quote"] == answered.evidence.text
    # the passage holding the evidence comes first in the prompt
    assert (
        answered.messages[1]["content"].index("gc.autoPackLimit")
        < len(answered.messages[1]["content"]) // 2 + 200
    )


def test_a_follow_up_is_read_with_the_question_before_it(answering: Answering) -> None:
    history = [
        {"role": "user", "content": "What is the default value of pack.depth?"},
        {"role": "assistant", "content": "pack.depth defaults to 50."},
    ]
    assert contextual_query("And what is its maximum?", history) == (
        "What is the default value of pack.depth? And what is its maximum?"
    )
    assert contextual_query("What is the default of gc.auto?", history) == (
        "What is the default of gc.auto?"
    )
    assert contextual_query("And what is its maximum?", []) == "And what is its maximum?"

    prepared = answering.prepare("And what is its maximum?", history)
    assert prepared.refusal is None
    assert prepared.evidence is not None and prepared.evidence.subject == "pack.depth"
    assert "4095" in prepared.evidence.quote()
    # the conversation goes into the prompt, before the question with its passages
    roles = [m["role"] for m in prepared.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert prepared.messages[-1]["content"].endswith("Question: And what is its maximum?")
    assert prepared.query.startswith("What is the default value of pack.depth?")


def test_compose_keeps_a_supported_answer_and_drops_an_invented_figure(
    answering: Answering,
) -> None:
    prepared = answering.prepare("What is the default value of gc.autoPackLimit?")
    evidence = prepared.evidence
    assert evidence is not None
    quote = evidence.quote()

    good = compose(prepared, "The default value of gc.autoPackLimit is 50.")
    assert good.startswith("The default value of gc.autoPackLimit is 50.\n\n")
    assert f"“{quote}”" in good and "Source: git-" in good

    for wrong in (
        "The default value is 6700.",  # the neighbouring entry's figure
        "The default is 75 packs.",  # invented
        "gc.autoPackLimit",  # says nothing the question did not
        "- 1.\n- 2.\n- 3.",
    ):
        assert not supported(wrong, evidence, prepared.question)
        assert compose(prepared, wrong) == f"“{quote}”\nSource: git-config.html, page 1" or (
            compose(prepared, wrong).startswith(f"“{quote}”")
        )
    # a model that refuses, says nothing or copies the evidence: the quote answers once
    assert compose(prepared, DEFAULT_REFUSAL, [DEFAULT_REFUSAL]).startswith(f"“{quote}”")
    assert compose(prepared, "").startswith(f"“{quote}”")
    assert compose(prepared, quote).count(quote) == 1

    refused = answering.prepare("How do I cook a risotto with saffron?")
    assert compose(refused, "Anything") == DEFAULT_REFUSAL


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("How many loose objects trigger git gc --auto?", ["number"]),
        ("What is the range of values for core.compression?", ["number"]),
        ("What does git log default to when no revision range is given?", []),
        ("What HTTP status does the server answer with when nothing changed?", ["number"]),
        ("Which exit code means an internal error?", ["number"]),
        # an environment variable or an option is also a name in code
        ("Which environment variable overrides the history file?", ["env", "code"]),
        ("Which command-line option disables the init files?", ["option", "code"]),
        ("Which function runs a Shapiro-Wilk test?", ["code"]),
        ("Which file stores the command history?", ["file"]),
    ],
)
def test_the_kind_of_answer_a_question_asks_for(question: str, kinds: list[str]) -> None:
    from assets.retrieval.evidence import answer_kinds

    assert answer_kinds(question) == kinds


def test_sentences_holding_the_asked_kind_and_code_lines() -> None:
    from assets.retrieval.evidence import holds_kind, looks_like_code

    q = "Which environment variable overrides the location of the history file?"
    assert holds_kind(
        "It may be overridden by the environment variable OCTAVE_HISTFILE.", ["env"], q
    )
    assert not holds_kind("You need to issue the history_file command.", ["env"], q)
    # a manual-page reference is not a figure; a figure the question already holds is not new
    assert not holds_kind("See git-gc(1) for details.", ["number"], "How old must objects be?")
    assert holds_kind("Prune objects older than 2 weeks.", ["number"], "How old must objects be?")
    assert not holds_kind("The limit is 6700.", ["number"], "Is the limit 6700?")
    assert looks_like_code("git log [<options>] [<revision-range>] [[--] <path>...]")
    assert not looks_like_code("When no revision range is given, it defaults to HEAD.")


def test_irregular_forms_meet_their_verb() -> None:
    from assets.retrieval.lexical import tokenize

    assert set(tokenize("the commits are shown")) & set(tokenize("git log shows commits")) >= {
        "commit",
        "show",
    }


STARTUP = (
    "#### Startup Files\n\n"
    "When the program starts, it looks for commands to execute from the files in the following "
    "list. These files may contain any valid commands, including function definitions.\n\n"
    "The site file is provided so that changes to the default environment can be made "
    "globally for all users at your site for all versions you have installed. Care should be "
    "taken when making changes to this file since all users at your site will be affected. "
    "The default file may be overridden by the environment variable APP_SITE_INITFILE.\n\n"
    "The versioned site file is provided so that changes to the default environment can be "
    "made globally for all users of a particular version. Care should be taken when making "
    "changes to this file since all users at your site will be affected. The default file "
    "may be overridden by the environment variable APP_VERSION_INITFILE.\n\n"
    "The personal file is used to make personal changes to the default environment of one "
    "user, in the home directory, read after the site files have been read."
)


def test_a_follow_up_is_answered_with_what_was_not_said_yet() -> None:
    chunk = {
        "id": "s0",
        "document_id": "startup",
        "filename": "Startup-Files.html",
        "page": 1,
        "start": 0,
        "end": len(STARTUP),
        "heading": ["Invoking", "Startup Files"],
        "text": STARTUP,
    }
    other = dict(
        chunk,
        id="o0",
        document_id="other",
        filename="History.html",
        text="#### History\n\n"
        "The history file keeps the commands typed at the prompt between sessions.",
    )
    answering = Answering(build_index([chunk, other]), min_confidence=0.0)
    first = "Which environment variable overrides the site-wide startup file?"
    answer = answering.prepare(first)
    assert answer.evidence is not None and "APP_SITE_INITFILE" in answer.evidence.quote()
    assert "APP_VERSION_INITFILE" not in answer.evidence.quote()

    history = [
        {"role": "user", "content": first},
        {"role": "assistant", "content": f"“{answer.evidence.quote()}”"},
    ]
    follow_up = answering.prepare("And which one does that for a single version?", history)
    assert follow_up.query.startswith(first)
    assert follow_up.evidence is not None
    assert "APP_VERSION_INITFILE" in follow_up.evidence.quote()
