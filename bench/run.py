"""`make bench`: the speed figures of issue 14, measured in one bounded run on 127.0.0.1 only.

Starts the production configuration (deploy/gunicorn.conf.py, its default worker count, bound to TCP
loopback for the benchmark only: FLASK_ALLOW_TCP_BIND) beside a bare WSGI anchor under the same
settings, and the shipped nginx site rendered for loopback by tests/deploy_harness.py (TLS, gzip, one
nginx worker). Measures with wrk (-t2 -c16, rounds of 5 s, min/median/max), then the submit path
(8 clients, SMTP stalled, sender running; plain and sealed mode), delivery latency to a local SMTP
server, one worker's memory over 10,000 mixed requests (max_requests off), page weight, and
Lighthouse 12.2.3 (installed into bench/.lighthouse/, Chromium from Debian). Every process it starts
is stopped at the end, by its process group; every wait is bounded. Prints a Markdown report and
writes it to bench/last-run.md.

Run: .venv/bin/python bench/run.py [--rounds 3] [--seconds 5] [--no-lighthouse]
"""

import argparse
import gzip
import http.client
import json
import multiprocessing
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from rsct import pages, smime  # noqa: E402

import deploy_harness as harness  # noqa: E402

WRK = shutil.which("wrk")
LIGHTHOUSE_VERSION = "12.2.3"
LIGHTHOUSE_DIR = ROOT / "bench" / ".lighthouse"
CHROME = "/usr/bin/chromium"
HTMX_FILE = ROOT / "node_modules" / "htmx.org" / "dist" / "htmx.min.js"
WORKERS = min(multiprocessing.cpu_count() * 2 + 1, 9)  # the shipped gunicorn.conf.py's default
PATHS = {"pages.index": "/", "pages.iop": "/intensive-outpatient-programs", "pages.therapy": "/substance-abuse-therapy"}
FORM = {"name": "Bench Visitor", "contact_method": "call", "phone": "203 555 0147", "leave_message": "no"}
HIDDEN = re.compile(r'name="(form_token|csrf_token|cookie_check)" type="hidden" value="([^"]*)"')


def public_paths(app) -> list[str]:
    """PUBLIC_PAGES as URLs, in every language: the bench measures whatever the one list holds."""
    with app.test_request_context():
        return [path for page in pages.public_pages() for path in page.values()]


# --- processes --------------------------------------------------------------------------------------


def gunicorn(name, spec, env, port, logs, extra=()):
    process = harness.Process(
        name,
        [str(harness.VENV_BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", *extra, spec],
        logs,
        cwd=ROOT,
        env={**env, "RSCT_BIND": f"127.0.0.1:{port}", "FLASK_ALLOW_TCP_BIND": "true", "RSCT_WORKERS": str(WORKERS)}
        | ({"RSCT_WORKERS": "1"} if "--max-requests" in extra else {}),
    )
    deadline = time.monotonic() + 30
    while True:
        process.check_running()
        try:
            if get(port, "/healthz")[0].status in (200, 404):
                return process
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start:\n{process.output()[-3000:]}")
        time.sleep(0.2)


def get(port, path, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def record_answers(port, paths, file: Path) -> None:
    """The site's answers (status, headers, bytes) for the bare anchor to repeat."""
    answers = {}
    for path in paths:
        response, body = get(port, path)
        headers = [(k, v) for k, v in response.getheaders() if k not in ("Date", "Server", "Connection")]
        answers[path] = [f"{response.status} {response.reason}", headers, body.decode("latin-1")]
    file.write_text(json.dumps(answers))


# --- wrk --------------------------------------------------------------------------------------------


def wrk(url, seconds, headers=()):
    args = [WRK, "-t2", "-c16", f"-d{seconds}s", "--timeout", "5s"]
    for header in headers:
        args += ["-H", header]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 30).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if not rate:
        raise RuntimeError(f"wrk printed no rate for {url}:\n{out}")
    return float(rate.group(1)), int(bad.group(1)) if bad else 0, errors.group(1) if errors else ""


def rounds(targets: dict, count: int, seconds: int) -> dict:
    """Each target once per round, interleaved, so the machine's other load falls on all alike."""
    results = {name: [] for name in targets}
    problems = []
    for _ in range(count):
        for name, (url, headers) in targets.items():
            rate, bad, errors = wrk(url, seconds, headers)
            results[name].append(rate)
            if bad or errors:
                problems.append(f"{name}: {bad} non-2xx, socket errors {errors or 'none'}")
    return {"rates": results, "problems": problems}


def spread(values) -> str:
    return f"{min(values):,.0f} / **{statistics.median(values):,.0f}** / {max(values):,.0f}"


# --- the submit path --------------------------------------------------------------------------------


def post_form(connection, port, timings, errors):
    """One visitor: load the form (fresh tokens and session), then send it as htmx does."""
    connection.request("GET", "/contact")
    response = connection.getresponse()
    page = response.read().decode()
    cookie = (response.getheader("Set-Cookie") or "").split(";")[0]
    body = urlencode({**dict(HIDDEN.findall(page)), **FORM}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true", "Cookie": cookie}
    started = time.perf_counter()
    connection.request("POST", "/contact", body=body, headers=headers)
    response = connection.getresponse()
    answer = response.read()
    timings.append(time.perf_counter() - started)
    if response.status != 200 or b"RSCT-" not in answer:
        errors.append(response.status)


def submit_bench(port, seconds=10, clients=8) -> dict:
    timings, errors = [], []
    deadline = time.monotonic() + seconds

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < deadline:
            try:
                post_form(connection, port, timings, errors)
            except (OSError, http.client.HTTPException) as error:
                errors.append(type(error).__name__)
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 30)
    elapsed = time.monotonic() - started
    timings.sort()
    stored = len(timings) - len(errors)
    return {
        "stored_per_s": stored / elapsed,
        "p50_ms": statistics.median(timings) * 1000,
        "p95_ms": timings[int(len(timings) * 0.95) - 1] * 1000,
        "errors": len(errors),
        "posts": len(timings),
    }


def stalled_smtp() -> socket.socket:
    """A listening socket that never accepts: the sender connects and waits, as with a hung relay."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    return listener


# --- memory -----------------------------------------------------------------------------------------


def worker_pid(master_pid: int) -> int:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return int(children[0])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def memory_bench(port, paths, master_pid, total=10_000) -> dict:
    """10,000 mixed requests on keep-alive connections: every page, 404s, and a valid post every 20th."""
    pid = worker_pid(master_pid)
    mix = [*paths, "/contact", "/sitemap.xml", "/no-such-page", "/contact/thanks"]
    samples, done, lock = [], [0], threading.Lock()
    timings, errors = [], []

    def client(share):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for i in range(share):
            if i % 20 == 19:
                post_form(connection, port, timings, errors)
            else:
                connection.request("GET", mix[i % len(mix)])
                connection.getresponse().read()
            with lock:
                done[0] += 1
                if done[0] % 1000 == 0:
                    samples.append((done[0], rss_mb(pid)))
        connection.close()

    threads = [threading.Thread(target=client, args=(total // 4,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    return {"samples": samples, "pid_same": worker_pid(master_pid) == pid, "errors": len(errors)}


# --- through nginx ----------------------------------------------------------------------------------


def delivery_bench(d, count=20) -> dict:
    """Submission (straight to gunicorn's socket) to acceptance by the deployment's SMTP server."""
    latencies = []
    for i in range(count):
        response, page = harness.unix_request(d.socket, "/contact")
        cookie = response.getheader("Set-Cookie").split(";")[0]
        fields = {**dict(HIDDEN.findall(page.decode())), **FORM, "name": f"Delivery {i}"}
        headers = {"Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true", "Cookie": cookie}
        started = time.monotonic()
        response, answer = harness.unix_request(d.socket, "/contact", "POST", urlencode(fields).encode(), headers)
        reference = re.search(rb"RSCT-[0-9A-Z]{6}", answer).group(0)
        while not any(reference in raw for raw in d.inbox.messages):
            if time.monotonic() - started > 30:
                raise RuntimeError("a message did not arrive within 30 s")
            time.sleep(0.01)
        latencies.append(time.monotonic() - started)
        time.sleep(0.37 * (i % 3))  # spread over the sender's polling cycle
    latencies.sort()
    return {"p50_s": statistics.median(latencies), "p95_s": latencies[int(count * 0.95) - 1], "n": count}


def page_weight(d, paths) -> list[dict]:
    """What a first visit downloads, gzip-compressed as nginx sends it: HTML, CSS, own JS; htmx apart."""
    rows = []
    for path in paths:
        response, html = d.request(path, headers={"Accept-Encoding": "gzip"})
        text = gzip.decompress(html).decode() if response.getheader("Content-Encoding") == "gzip" else html.decode()
        own = re.findall(r'(?:href|src)="(/static/(?:css|js)/[^"]+)"', text)
        sizes = {"html": len(html)}
        for asset in own:
            asset_response, body = d.request(asset, headers={"Accept-Encoding": "gzip"})
            sizes[asset.split("?")[0].rsplit("/", 1)[-1]] = len(body)
        rows.append({"path": path, "sizes": sizes, "total": sum(sizes.values()), "htmx": "data-htmx-src" in text})
    return rows


def lighthouse(d, paths, logs) -> dict:
    """Lighthouse 12.2.3 mobile for each page, installed into bench/.lighthouse (not the test suite's)."""
    binary = LIGHTHOUSE_DIR / "node_modules" / ".bin" / "lighthouse"
    if not binary.exists():
        subprocess.run(
            ["npm", "install", "--prefix", str(LIGHTHOUSE_DIR), "--no-audit", "--no-fund", "--loglevel=error",
             f"lighthouse@{LIGHTHOUSE_VERSION}"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    scores = {}
    for path in paths:
        out = logs / f"lighthouse{path.replace('/', '_')}.json"
        subprocess.run(
            [str(binary), d.url + path, "--quiet", "--output=json", f"--output-path={out}", "--form-factor=mobile",
             "--only-categories=performance,accessibility,best-practices,seo",
             "--chrome-flags=--headless=new --no-sandbox --ignore-certificate-errors"],
            env={**os.environ, "CHROME_PATH": CHROME}, capture_output=True, timeout=120,
        )  # fmt: skip
        report = json.loads(out.read_text())
        scores[path] = {name: round(cat["score"] * 100) for name, cat in report["categories"].items()}
        failed = [
            audit_id
            for audit_id, audit in report["audits"].items()
            if audit.get("score") is not None and audit["score"] < 1 and audit.get("scoreDisplayMode") == "binary"
        ]
        scores[path]["failed"] = failed[:6]
        scores[path]["LCP ms"] = round(report["audits"]["largest-contentful-paint"]["numericValue"])
    return scores


# --- the run ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--no-lighthouse", action="store_true")
    options = parser.parse_args()
    if not WRK:
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        return 2
    started = time.monotonic()
    root = harness.new_root()
    logs = root / "logs"
    processes, report = [], {}
    d = None
    stall = stalled_smtp()
    try:
        d = harness.prepare(root)
        env = {
            **d.env,
            "FLASK_RATE_LIMIT_COUNT": "10000",
            "FLASK_RATE_LIMIT_SECONDS": "1",
            "FLASK_MAIL_PORT": str(stall.getsockname()[1]),
        }
        env["FLASK_INSTANCE_PATH"] = str(root / "bench-instance")
        os.makedirs(env["FLASK_INSTANCE_PATH"], exist_ok=True)

        from app import create_app

        os.environ.update({k: v for k, v in env.items() if k.startswith("FLASK_")})
        paths = public_paths(create_app())
        site_port, bare_port = harness.free_port(), harness.free_port()
        site = gunicorn("site", "app:create_app()", env, site_port, logs)
        processes.append(site)
        answers = root / "answers.json"
        record_answers(site_port, ["/", "/contact"], answers)
        bare = gunicorn("bare", "bench.bare_wsgi:app", {**env, "RSCT_BENCH_ANSWERS": str(answers)}, bare_port, logs)
        processes.append(bare)

        print(f"gunicorn rows ({options.rounds} rounds of {options.seconds} s)...", flush=True)
        report["gunicorn"] = rounds(
            {
                "home: anchor": (f"http://127.0.0.1:{bare_port}/", ()),
                "home: site": (f"http://127.0.0.1:{site_port}/", ()),
                "contact: anchor": (f"http://127.0.0.1:{bare_port}/contact", ()),
                "contact: site": (f"http://127.0.0.1:{site_port}/contact", ()),
            },
            options.rounds,
            options.seconds,
        )
        bare.stop()
        processes.remove(bare)

        print("submit path (sender running, SMTP stalled)...", flush=True)
        sender = harness.Process(
            "sender", [str(harness.VENV_BIN / "flask"), "--app", "app", "outbox", "run"], logs, cwd=ROOT, env=env
        )
        processes.append(sender)
        report["submit"] = submit_bench(site_port)
        site.stop()
        processes.remove(site)

        keys = root / "office"
        _p12, office_cert = smime.new_office_identity(str(keys), harness.RECIPIENT, "bench-password-1234")
        sealed_env = {**env, "FLASK_SMIME_OFFICE_CERT": office_cert}
        site = gunicorn("site-sealed", "app:create_app()", sealed_env, site_port, logs)
        processes.append(site)
        report["submit_sealed"] = submit_bench(site_port)
        site.stop()
        processes.remove(site)
        sender.stop()
        processes.remove(sender)

        print("one worker's memory over 10,000 mixed requests...", flush=True)
        one = gunicorn("one-worker", "app:create_app()", env, site_port, logs, extra=("--max-requests", "0"))
        processes.append(one)
        report["memory"] = memory_bench(site_port, paths, one.popen.pid)
        one.stop()
        processes.remove(one)

        print("nginx rows...", flush=True)
        d.env.update({"RSCT_WORKERS": str(WORKERS), "FLASK_RATE_LIMIT_COUNT": "10000"})
        d.env.update({"FLASK_HTMX_URL": "/static/vendor/htmx.min.js"})  # self-hosted, as Lighthouse is asked to
        (d.srv / "app" / "static" / "vendor").mkdir(exist_ok=True)
        shutil.copy(HTMX_FILE, d.srv / "app" / "static" / "vendor" / "htmx.min.js")
        harness.make_readable(d.srv / "app" / "static")
        harness.write_security_headers(d)
        harness.start(d)
        d.request("/")  # into nginx's page cache
        _response, home = d.request("/")
        (d.srv / "app" / "static" / "bench-home.html").write_bytes(home)
        harness.make_readable(d.srv / "app" / "static")
        gz = ("Accept-Encoding: gzip",)
        report["nginx"] = rounds(
            {"home: file": (d.url + "/static/bench-home.html", gz), "home: site": (d.url + "/", gz)},
            options.rounds,
            options.seconds,
        )
        print("delivery latency, page weight...", flush=True)
        report["delivery"] = delivery_bench(d)
        report["weight"] = page_weight(d, paths)
        report["htmx_gz"] = len(gzip.compress(HTMX_FILE.read_bytes(), 1))
        if not options.no_lighthouse:
            print("Lighthouse...", flush=True)
            try:
                report["lighthouse"] = lighthouse(d, paths, logs)
            except (subprocess.SubprocessError, OSError, ValueError, KeyError) as error:
                report["lighthouse"] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
    finally:
        for process in reversed(processes):
            process.stop()
        if d is not None:
            d.stop()
        stall.close()
    report["seconds"] = time.monotonic() - started
    text = markdown(report, options)
    (ROOT / "bench" / "last-run.md").write_text(text)
    print(text)
    shutil.rmtree(root, ignore_errors=True)
    return 0


def markdown(r, options) -> str:
    g, n = r["gunicorn"]["rates"], r["nginx"]["rates"]

    def ratio(site, anchor):
        return statistics.median(site) / statistics.median(anchor)

    lines = [
        f"Machine: {os.cpu_count()} cores; gunicorn {WORKERS} sync workers (deploy/gunicorn.conf.py), wrk -t2 -c16, "
        f"{options.rounds} rounds of {options.seconds} s, req/s as min / **median** / max. Run took "
        f"{r['seconds']:.0f} s.",
        "",
        "| figure | anchor | site | ratio (medians) | target |",
        "| --- | --- | --- | --- | --- |",
        f"| home page from gunicorn | {spread(g['home: anchor'])} | {spread(g['home: site'])} | "
        f"{ratio(g['home: site'], g['home: anchor']):.2f} | ≥ 0.6 |",
        f"| `/contact` from gunicorn | {spread(g['contact: anchor'])} | {spread(g['contact: site'])} | "
        f"{ratio(g['contact: site'], g['contact: anchor']):.2f} | ≥ 0.25 |",
        f"| home page through nginx, HTTPS, gzip | {spread(n['home: file'])} | {spread(n['home: site'])} | "
        f"{ratio(n['home: site'], n['home: file']):.2f} | ≥ 0.8 |",
    ]
    for name, s in (("submit", r["submit"]), ("submit, sealed mode", r["submit_sealed"])):
        lines.append(
            f"| {name}: 8 clients, SMTP stalled, sender running | — | {s['stored_per_s']:.0f} stored/s, "
            f"p50 {s['p50_ms']:.1f} ms, p95 {s['p95_ms']:.1f} ms, {s['errors']} errors of {s['posts']} | — | "
            "≥ 300/s, p95 ≤ 20 ms, 0 errors |"
        )
    problems = r["gunicorn"]["problems"] + r["nginx"]["problems"]
    lines += ["", "wrk problems: " + ("; ".join(problems) if problems else "none"), ""]
    m = r["memory"]["samples"]
    half = [rss for count, rss in m if count >= 5000]
    lines.append(
        f"One worker, 10,000 mixed requests (max_requests off): RSS {m[0][1]:.1f} MB after 1,000, "
        f"{m[-1][1]:.1f} MB after {m[-1][0]:,}; second half {min(half):.1f}–{max(half):.1f} MB "
        f"(same worker throughout: {r['memory']['pid_same']}; errors {r['memory']['errors']}). Target ≤ 60 MB, flat."
    )
    dl = r["delivery"]
    lines += [
        f"Delivery (submission to accepted by a local SMTP server, {dl['n']} requests): p50 {dl['p50_s']:.2f} s, "
        f"p95 {dl['p95_s']:.2f} s. Target p95 ≤ 3 s.",
        "",
        "| page | HTML + CSS + own JS, gzip (bytes) | total | htmx |",
        "| --- | --- | --- | --- |",
    ]
    for row in r["weight"]:
        parts = ", ".join(f"{name} {size:,}" for name, size in row["sizes"].items())
        htmx = f"+ {r['htmx_gz']:,} (loaded after the page)" if row["htmx"] else "none"
        lines.append(f"| `{row['path']}` | {parts} | {row['total']:,} | {htmx} |")
    lighthouse_scores = r.get("lighthouse")
    if lighthouse_scores:
        lines += ["", f"Lighthouse {LIGHTHOUSE_VERSION}, mobile, htmx self-hosted, through nginx:", ""]
        if "error" in lighthouse_scores:
            lines.append(f"not measured: {lighthouse_scores['error']}")
        else:
            lines += [
                "| page | performance | accessibility | best practices | SEO | LCP | below 1 |",
                "| --- " * 7 + "|",
            ]
            for path, s in lighthouse_scores.items():
                lines.append(
                    f"| `{path}` | {s.get('performance')} | {s.get('accessibility')} | {s.get('best-practices')} | "
                    f"{s.get('seo')} | {s['LCP ms']} ms | {', '.join(s['failed']) or '—'} |"
                )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
