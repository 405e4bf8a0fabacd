"""Screen 9 in Chromium, on the shared trained project: a question answered from the active
version, the answer written into the page piece by piece as its server-sent events arrive; a
follow-up sent with the conversation so far; a citation that opens annual-leave-policy.docx at
the cited page with exactly the quoted span marked and scrolled into view; an off-topic question
shown as a refusal with its reason; another tenant's pages 404 and a question without the CSRF
token refused."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import expect

from tests.e2e.portal.conftest import accept_invitation, accessible, shot

CHAT = "/t/acme/projects/handbook/chat"
QUESTION = "How many days of annual leave do employees get?"
ANSWER_TIMEOUT = 180_000  # the API process loads the model on its first question


def _events(body: str) -> list[tuple[str, object]]:
    found = re.findall(r"event: (\w+)\r?\ndata: (.*?)\r?\n", body)
    return [(name, json.loads(data)) for name, data in found]


def _ask(page, question: str):
    """Ask in the page; the answer's article once it is complete (pinned by its position:
    later answers follow it)."""
    answers = page.locator("article.msg.assistant")
    answer = answers.nth(answers.count())
    page.get_by_role("textbox", name="Your question").fill(question)
    page.get_by_role("button", name="Ask").click()
    expect(answer).to_have_attribute("data-state", "done", timeout=ANSWER_TIMEOUT)
    return answer


def test_streamed_answer_follow_up_citation_and_refusal(portal, trained_project):
    http, headers = portal.http, trained_project.headers
    page = trained_project.page()
    page.goto(CHAT)
    active = next(
        d
        for d in http.get("/v1/projects/handbook/deployments", headers=headers).json()
        if d["status"] == "active"
    )
    expect(page.get_by_label("Version")).to_have_value(active["model"])

    answer = _ask(page, QUESTION)
    text = answer.locator(".answer-text").text_content() or ""
    assert "annual leave" in text.lower()
    # The page wrote the answer in as its pieces arrived (it counts the `piece` events).
    assert int(answer.get_attribute("data-pieces") or 0) > 1
    expect(answer).not_to_have_class(re.compile(r"\brefusal\b"))

    # The first source is annual-leave-policy.docx; its link names the page and the span.
    link = answer.locator(".citations a").first
    expect(link).to_contain_text("annual-leave-policy.docx, page")
    href = link.get_attribute("href")
    assert href is not None
    url = urlsplit(href)
    assert re.fullmatch(r"/t/acme/projects/handbook/documents/\w+/view", url.path), href
    query = {k: int(v[0]) for k, v in parse_qs(url.query).items()}
    assert set(query) == {"page", "start", "end"} and query["start"] < query["end"]

    # A follow-up goes with the conversation so far.
    with page.expect_request(f"**{CHAT}/stream") as sent:
        follow = _ask(page, "And how many days can be carried over?")
    history = json.loads(parse_qs(sent.value.post_data)["history"][0])
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[0]["content"] == QUESTION and history[1]["content"] == text
    expect(follow.locator(".answer-text")).to_contain_text("carry over")

    # The citation opens the document at the cited page, the quoted span marked and in view.
    with page.context.expect_page() as opened:
        link.click()
    viewer = opened.value
    viewer.wait_for_load_state()
    expect(viewer.get_by_role("heading", name="annual-leave-policy.docx")).to_be_visible()
    expect(viewer.locator("h1")).to_contain_text(f"page {query['page']}")
    mark = viewer.locator("mark#cited")
    expect(mark).to_have_count(1)
    expect(mark).to_be_in_viewport()
    cited = http.post(
        "/v1/chat/completions",
        json={"model": active["model"], "messages": [{"role": "user", "content": QUESTION}]},
        headers=headers,
    ).json()["citations"][0]
    assert cited["filename"] == "annual-leave-policy.docx"
    assert (cited["page"], cited["quote_start"], cited["quote_end"]) == (
        query["page"],
        query["start"],
        query["end"],
    )
    # The mark holds exactly the quoted sentences (the quote joins them with single spaces).
    assert " ".join(mark.inner_text().split()) == cited["quote"]
    assert len(mark.text_content() or "") == cited["quote_end"] - cited["quote_start"]
    accessible(viewer, "document viewer")
    shot(viewer, "09-citation")
    viewer.close()

    # An off-topic question is shown as a refusal, with why.
    refused = _ask(page, "What is the capital of Mongolia?")
    expect(refused).to_have_class(re.compile(r"\brefusal\b"))
    expect(refused.locator(".refusal-label")).to_contain_text("Refused")
    expect(refused.locator(".refusal-reason")).to_contain_text("do not answer it")
    expect(refused.locator(".citations")).to_have_count(0)
    accessible(page, "chat")
    shot(page, "09-chat")

    # The stream itself: meta first (version, refusal, citations), the text in several
    # pieces, then done with the whole text; a refusal's meta says why.
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    for question, refused_reason in (
        (QUESTION, None),
        ("What is the capital of Mongolia?", "low_confidence"),
    ):
        streamed = page.request.post(
            f"{CHAT}/stream",
            form={"model": active["model"], "question": question},
            headers={"X-CSRFToken": token},
        )
        assert streamed.status == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = _events(streamed.text())
        names = [name for name, _ in events]
        assert names[0] == "meta" and names[-1] == "done" and set(names[1:-1]) == {"piece"}
        meta, done = events[0][1], events[-1][1]
        assert isinstance(meta, dict) and isinstance(done, dict)
        assert meta["version"] == active["version"]
        assert meta["refusal_reason"] == refused_reason
        assert "".join(str(data) for _, data in events[1:-1]) == done["text"]
        if refused_reason is None:
            assert names.count("piece") > 1
            assert meta["citations"][0]["filename"] == "annual-leave-policy.docx"
    page.close()


def test_other_tenant_and_csrf_are_refused(portal, browser, trained_project):
    http, headers = portal.http, trained_project.headers
    document = next(
        d
        for d in http.get("/v1/projects/handbook/documents", headers=headers).json()
        if d["filename"] == "annual-leave-policy.docx"
    )
    viewer_url = f"/t/acme/projects/handbook/documents/{document['id']}/view?page=1"

    made = portal.tenant("chatrival", "owner@chatrival.example.com")
    rival = accept_invitation(browser, portal, made["invitation"]["accept_url"], "Rhea Rival")
    assert rival.goto(CHAT).status == 404
    assert rival.goto(viewer_url).status == 404
    token = rival.locator('meta[name="csrf-token"]').get_attribute("content")
    asked = rival.request.post(
        f"{CHAT}/stream",
        form={"model": "acme/handbook", "question": QUESTION},
        headers={"X-CSRFToken": token},
    )
    assert asked.status == 404
    rival.context.close()

    owner = trained_project.page()
    refused = owner.request.post(
        f"{CHAT}/stream", form={"model": "acme/handbook", "question": QUESTION}
    )
    assert refused.status == 403 and "CSRF" in refused.text()
    # A span outside the page is refused with what fits.
    owner.goto(f"{viewer_url}&start=10&end=999999")
    expect(owner.locator("main")).to_contain_text("start and end go together")
    owner.close()
