"""Faults a root-run CI cannot fake with file modes: a full disk, and errors of every kind keep the headers."""

import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from flask import request

from helpers import ROOT

# Runs in its own process: RLIMIT_FSIZE makes the kernel refuse writes past a size, as a full disk does.
FULL_DISK_SCRIPT = textwrap.dedent("""
    import json, re, resource, signal, sys
    sys.path.insert(0, sys.argv[1])
    from app import create_app
    app = create_app({"CONFIG_NAME": "testing", "INSTANCE_PATH": sys.argv[2], "RATE_LIMIT_COUNT": 100000})
    client = app.test_client()
    token = re.search(r'name="form_token" type="hidden" value="([^"]+)"', client.get("/contact").text)[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a refused write returns EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), int(sys.argv[3])))
    seen = []
    for i in range(400):
        note = f"Fullcanary{i} " + "words " * 150
        response = client.post("/contact", headers={"HX-Request": "true"}, data={
            "form_token": token, "name": f"Visitor {i}", "contact_method": "call",
            "phone": "203 555 0147", "leave_message": "no", "message": note})
        seen.append(response.status_code)
        if response.status_code != 200:
            text = response.get_data(as_text=True)
            print(json.dumps({"statuses": seen, "kept": f"Fullcanary{i}" in text,
                              "phone": "tel:+12034216242" in text, "call": "call us" in text}))
            break
    else:
        print(json.dumps({"statuses": seen}))
""")


def test_a_full_disk_tells_the_visitor_to_call_and_keeps_their_words(tmp_path):
    instance = tmp_path / "instance"
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, str(ROOT), str(instance), str(256 * 1024)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    statuses = outcome["statuses"]
    assert statuses[-1] == 503, f"the disk never filled up: {statuses[-5:]}"
    assert set(statuses[:-1]) == {200}
    assert outcome["kept"] and outcome["phone"] and outcome["call"]
    assert "Traceback" not in result.stderr
    # What was stored before the disk filled up is intact and readable.
    with sqlite3.connect(instance / "rsct.sqlite3") as db:
        (count,) = db.execute("SELECT count(*) FROM inquiries").fetchone()
        (check,) = db.execute("PRAGMA integrity_check").fetchone()
    db.close()
    assert count == len(statuses) - 1
    assert check == "ok"


@pytest.fixture
def fragile_app(make_app):
    app = make_app(RATE_LIMIT_COUNT=1)

    @app.get("/boom")
    def boom():
        raise RuntimeError("internal detail")

    app.testing = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def _error_responses(app):
    client = app.test_client()
    yield "404", client.get("/no-such-page")
    yield "405", client.delete("/")
    yield "413", client.post("/contact", data={"message": "x" * 40000})
    yield "413 htmx", client.post("/contact", data={"message": "x" * 40000}, headers={"HX-Request": "true"})
    client.post("/contact", data={"name": "A"})
    yield "429", client.post("/contact", data={"name": "A"})
    yield "429 from nginx", client.get("/errors/rate-limited")
    yield "500", client.get("/boom")
    app.config["DATABASE"] = "/proc/rsct-nowhere.sqlite3"
    yield "503", client.post("/contact", data={"name": "A"}, headers={"HX-Request": "true"})
    yield "503 healthz", client.get("/healthz")


def test_security_headers_on_every_error_status(fragile_app):
    seen = []
    for label, response in _error_responses(fragile_app):
        seen.append(label)
        headers = response.headers
        assert headers["Content-Security-Policy"].startswith("default-src 'none'"), label
        assert headers["X-Content-Type-Options"] == "nosniff", label
        assert headers["Referrer-Policy"] == "same-origin", label
        assert headers["Cross-Origin-Resource-Policy"] == "same-origin", label
        assert "internal detail" not in response.get_data(as_text=True), label
        response.close()
    assert len(seen) == 9


def test_a_crash_logs_where_but_not_the_message(fragile_app, caplog):
    @fragile_app.post("/crash")
    def crash():
        raise ValueError("could not parse " + request.form["name"])  # a bug that quotes the visitor

    with caplog.at_level("INFO"):
        response = fragile_app.test_client().post("/crash", data={"name": "Zyxcanary"})
    assert response.status_code == 500
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "ValueError" in logged and "test_faults.py" in logged
    assert "Zyxcanary" not in logged and "Zyxcanary" not in caplog.text
