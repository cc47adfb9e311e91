"""Shared fixtures: the app on a real SQLite file, a live server, Chromium, axe-core and the Nu checker.

Constants and plain functions that tests import live in helpers.py; this file holds fixtures only.
"""

import json
import os
import pathlib
import shutil
import subprocess
import threading

import pytest
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from app import create_app
from rsct import instance

from helpers import ROOT, Receiver, Visitor, new_context, require_tool
from smtp_servers import Inbox, running_smtp, smtp_settings

VNU_JAR = ROOT / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
SYSTEM_CHROMIUM = "/usr/bin/chromium"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
# axe-core's best-practice rules too: landmarks ("region"), one main, heading order, unique labels.
AXE_TAGS = [*WCAG_TAGS, "best-practice"]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Tests see only the settings they set themselves, never the developer's FLASK_* variables."""
    for name in list(os.environ):
        if name.startswith("FLASK_"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_app(tmp_path):
    """Build a testing app on its own instance folder, prepared as `flask --app app setup` would (folder,
    secrets, database); keyword arguments override settings."""

    def build(**overrides):
        settings = {"CONFIG_NAME": "testing", "INSTANCE_PATH": str(tmp_path / "instance")}
        settings.update(overrides)
        app = create_app(settings)
        instance.prepare(app.config)
        return app

    return build


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def visitor(client):
    """A visitor in the `client` browser: visitor.submit(**changes) sends the valid request, htmx=True as htmx."""
    return Visitor(client)


@pytest.fixture
def inbox():
    """What the test SMTP server (smtp_port) accepted."""
    return Inbox()


@pytest.fixture
def smtp_port(inbox):
    """A real SMTP server on 127.0.0.1 that keeps what it accepts in `inbox`."""
    with running_smtp(inbox) as port:
        yield port


@pytest.fixture
def smtp_app(make_app, smtp_port):
    """The testing app, sending its mail to the test SMTP server."""
    return make_app(**smtp_settings(smtp_port))


@pytest.fixture
def live_server(app):
    """The app served over real HTTP on a free loopback port, for the browser."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser():
    """Chromium through Playwright: the system's when there is one, else Playwright's own."""
    executable = SYSTEM_CHROMIUM if os.path.exists(SYSTEM_CHROMIUM) else None
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as error:  # no browser at all on this machine
            require_tool(False, f"Chromium ({error.__class__.__name__})")
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser, app):
    """A browser context for the app under test (see new_context)."""
    ctx = new_context(browser, app.config["HTMX_URL"])
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def axe_violations():
    """Run axe-core (bundled by axe-playwright-python): WCAG 2.0/2.1/2.2 A and AA rules and best practices."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()

    def run(page) -> list[str]:
        results = axe.run(page, options={"runOnly": {"type": "tag", "values": AXE_TAGS}})
        return [
            f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes: {[n['target'] for n in v['nodes']][:3]})"
            for v in results.response["violations"]
        ]

    return run


@pytest.fixture(scope="session")
def html_errors(tmp_path_factory):
    """Check documents with the Nu Html Checker in one Java start; returns a list of error lines."""

    def check(documents: dict[str, str]) -> list[str]:
        require_tool(shutil.which("java") is not None, "Java (needed by the Nu Html Checker)")
        require_tool(VNU_JAR.exists(), "node_modules/vnu-jar (run: npm ci)")
        folder = tmp_path_factory.mktemp("vnu")
        for name, text in documents.items():
            (folder / f"{name}.html").write_text(text, encoding="utf-8")
        files = sorted(str(p) for p in folder.glob("*.html"))
        assert len(files) == len(documents)
        result = subprocess.run(
            ["java", "-jar", str(VNU_JAR), "--format", "json", "--errors-only", *files],
            capture_output=True,
            text=True,
            timeout=300,
        )
        # Exit 0: no errors; 1: errors found. Anything else, or no JSON, means nothing was checked.
        assert result.returncode in (0, 1), result.stderr[-2000:]
        messages = json.loads(result.stderr)["messages"]
        return [
            f"{pathlib.Path(m.get('url', '')).name}:{m.get('lastLine')}: {m.get('message')}"
            for m in messages
            if m.get("type") in ("error", "non-document-error") or m.get("subType") == "fatal"
        ]

    return check


@pytest.fixture
def receiver():
    """An alert endpoint on 127.0.0.1 that keeps every request (helpers.Receiver)."""
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
