"""Every sentence a visitor reads is short: at most 25 words, on every page and in every form state."""

import re
from html.parser import HTMLParser

import pytest

from helpers import PAGES, Visitor

MAX_WORDS = 25
# Elements whose text is never shown as page text.
UNSEEN = {"head", "script", "style", "template", "title"}
# Elements that end a run of text: a sentence never continues across them.
BLOCKS = {
    "p",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "td",
    "th",
    "caption",
    "legend",
    "label",
    "div",
    "section",
    "address",
    "summary",
    "nav",
    "header",
    "footer",
    "main",
    "ul",
    "ol",
    "table",
    "tr",
    "br",
    "a.button",
}
VOID = {"br", "input", "img", "meta", "link", "hr"}


class VisibleText(HTMLParser):
    """Collect the text runs of a document, one per block, leaving out what is never shown."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.runs, self.current, self.stack = [], [], []

    def _break(self):
        text = " ".join("".join(self.current).split())
        if text:
            self.runs.append(text)
        self.current = []

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        hidden = tag in UNSEEN or "hp" in classes or any(name == "hidden" for name, _ in attrs)
        if tag in BLOCKS or "button" in classes:
            self._break()
        if tag not in VOID:
            self.stack.append(hidden or (bool(self.stack) and self.stack[-1]))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if self.stack:
            self.stack.pop()
        if tag in BLOCKS or tag == "a":
            self._break()

    def handle_data(self, data):
        if not (self.stack and self.stack[-1]):
            self.current.append(data)


def sentences(html: str) -> list[str]:
    parser = VisibleText()
    parser.feed(html)
    parser._break()
    found = []
    for run in parser.runs:
        # A sentence ends at . ! ? or : followed by a space; abbreviations like "CT 06443." are short anyway.
        found.extend(part for part in re.split(r"(?<=[.!?])\s+", run) if part)
    return found


def too_long(html: str) -> list[str]:
    return [f"{len(s.split())} words: {s}" for s in sentences(html) if len(s.split()) > MAX_WORDS]


def test_the_sentence_splitter_sees_what_a_visitor_sees():
    html = (
        "<head><title>Not this at all one two three</title></head><p>One two. Three four five?</p>"
        "<template><p>hidden</p></template><div class='hp'>trap words</div><ul><li>Item one</li><li>Two</li></ul>"
    )
    assert sentences(html) == ["One two.", "Three four five?", "Item one", "Two"]
    assert too_long("<p>" + "word " * 26 + "</p>") and not too_long("<p>" + "word " * 25 + "</p>")


@pytest.mark.parametrize(
    "path", [*PAGES, "/contact/thanks", "/no-such-page", "/errors/rate-limited", "/errors/too-large"]
)
def test_every_sentence_on_a_page_is_short(client, path):
    assert too_long(client.get(path).text) == []


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"contact_method": "email", "email": "sam@example.org", "phone": ""},
        {"leave_message": "yes", "best_time": ""},
    ],
    ids=["call", "email", "message-ok"],
)
def test_every_sentence_of_the_confirmation_is_short(make_app, changes):
    visitor = Visitor(make_app(OFFICE_HOURS="Monday to Friday, 9 am to 5 pm").test_client())
    shown = visitor.submit(htmx=True, **changes)
    assert shown.status_code == 200
    reloaded = visitor.client.get("/contact/thanks")
    assert too_long(shown.text) == [] and too_long(reloaded.text) == []


def test_every_sentence_of_a_form_with_errors_is_short(visitor):
    shown = visitor.submit(htmx=True, name="", phone="12", email="x@")
    assert shown.status_code == 422
    assert too_long(shown.text) == []
