"""The pages say only what the office's facts support, and the privacy page names every script a page loads."""

import re

import pytest

from helpers import PAGES

# A script tag's own file, and htmx, which site.js adds on the pages whose tag names it.
SCRIPT_SRC = re.compile(r'<script\b[^>]*\b(?:src|data-htmx-src)="([^"]+)"')


def test_the_privacy_page_names_exactly_the_scripts_each_page_loads(client):
    loaded = set()
    for path in [*PAGES, "/contact/thanks"]:
        loaded |= {src.split("?")[0].rsplit("/", 1)[-1] for src in SCRIPT_SRC.findall(client.get(path).text)}
    assert loaded == {"htmx.min.js", "site.js"}
    privacy = client.get("/privacy").text
    assert "The scripts the pages load" in privacy
    assert "<strong>htmx</strong>" in privacy and "<strong>site.js</strong>" in privacy


@pytest.mark.parametrize(
    "htmx_url, where", [("/static/vendor/htmx.min.js", "It comes from this site itself."), (None, "jsDelivr")]
)
def test_the_privacy_page_says_where_htmx_comes_from(make_app, htmx_url, where):
    app = make_app(**({"HTMX_URL": htmx_url} if htmx_url else {}))
    text = app.test_client().get("/privacy").text
    htmx_item = re.search(r"<li><strong>htmx</strong>.*?</li>", text, re.S).group(0)
    assert where in htmx_item


@pytest.mark.parametrize(
    "claim",
    ["Individual sessions", "Group sessions", "you decide who is part of it", "Your family's part is your choice"],
)
def test_the_therapy_page_states_no_service_the_facts_do_not_contain(client, claim):
    text = client.get("/substance-abuse-therapy").text
    assert claim.lower() not in text.lower()
    assert "general information" in text


def test_the_home_page_promises_no_more_than_the_facts(client):
    text = client.get("/").text
    assert "stays private" not in text
    assert "kept confidential" in text and "without your express consent" in text
