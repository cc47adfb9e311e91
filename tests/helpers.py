"""What tests share besides fixtures: project paths, tool checks, and the browser context every browser test uses.

Fixtures live in conftest.py; test servers in smtp_servers.py and deploy_harness.py. Test modules import
from here, never from one another or from conftest.py.
"""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
HTMX_FILE = ROOT / "node_modules" / "htmx.org" / "dist" / "htmx.min.js"
IN_CI = os.environ.get("CI") == "true"

# Every page a visitor can reach; tests walk this table.
PAGES = {
    "/": "Addiction Treatment in Madison",
    "/intensive-outpatient-programs": "Intensive Outpatient Programs",
    "/substance-abuse-therapy": "Therapy",
    "/resources": "Resources",
    "/contact": "Contact",
    "/privacy": "Privacy",
}


def require_tool(available: bool, what: str) -> None:
    """Skip loudly when a tool is missing on a developer's machine; fail in CI."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing, and CI=true makes a missing tool a failure")
    pytest.skip(f"MISSING TOOL, CHECK NOT RUN: {what}")


# --- the browser --------------------------------------------------------------------------------

def new_context(browser, htmx_url: str, **options):
    """A fresh browser profile: htmx's CDN URL answered from the npm package, nothing else leaves the machine.

    Console errors, failed requests and Content-Security-Policy violations are collected in
    context.problems; tests assert that it stays empty.
    """
    require_tool(HTMX_FILE.exists(), "node_modules/htmx.org (run: npm ci)")
    ctx = browser.new_context(**options)
    ctx.problems = []
    ctx.add_init_script("""document.addEventListener('securitypolicyviolation', e =>
        console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));""")

    def outside(route):
        ctx.problems.append(f"request left the machine: {route.request.url}")
        route.abort()

    ctx.route("**/*", lambda route: outside(route) if not route.request.url.startswith("http://127.0.0.1")
              else route.continue_())
    ctx.route(htmx_url, lambda route: route.fulfill(
        path=str(HTMX_FILE), content_type="text/javascript; charset=utf-8",
        headers={"Access-Control-Allow-Origin": "*"}))
    ctx.on("console", lambda msg: ctx.problems.append(f"console {msg.type}: {msg.text}")
           if msg.type in ("error", "warning") else None)
    ctx.on("requestfailed", lambda request: ctx.problems.append(
        f"failed request: {request.url} {request.failure}"))
    ctx.on("weberror", lambda error: ctx.problems.append(f"page error: {error.error}"))
    return ctx
