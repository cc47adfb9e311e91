"""The shipped deployment (deploy/) started on loopback: nginx with TLS, gunicorn, the sender, an SMTP server.

Nothing here edits the shipped files: they are rendered for a temporary folder T by plain string
replacement (each replaced string must occur, so a change to deploy/ that the rendering no longer
fits fails loudly), then started exactly as DEPLOY.md starts them. Every wait is bounded, and
stop() ends every process this module started, by its own process group, always.

gunicorn gets its listening Unix socket as systemd would hand it over from deploy/systemd/rsct-web.socket:
this module binds it with the unit's path (under T), owner and mode, and passes it as fd 3 with
LISTEN_FDS/LISTEN_PID. nginx's workers run as the unit's SocketUser (www-data), as Debian's nginx.conf
has them, when the test runs as root.

T lives directly under /tmp with mode 0755 on every folder nginx's workers must enter.
"""

import http.client
import io
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
VENV_BIN = ROOT / ".venv" / "bin"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CURL = shutil.which("curl") or "/usr/bin/curl"
START_SECONDS = 20.0
STOP_SECONDS = 10.0
SENDER = "website@rsct.example.org"
RECIPIENT = "office@rsct.example.org"


# --- small helpers -----------------------------------------------------------------------------------


def ipv6_loopback() -> bool:
    """Whether [::1] can be bound here (containers without IPv6 cannot)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(also_ipv6: bool = False) -> int:
    """A TCP port free on 127.0.0.1 (and on [::1] when asked) right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if not also_ipv6:
            return port
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe6:
                probe6.bind(("::1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free loopback port found")


def render(text: str, replacements: dict[str, str], what: str) -> str:
    """Replace every key by its value in one pass; each key must occur (else the shipped file changed)."""
    missing = [key for key in replacements if key not in text]
    assert not missing, f"{what} no longer contains {missing}: update the test's rendering"
    pattern = re.compile("|".join(re.escape(key) for key in sorted(replacements, key=len, reverse=True)))
    return pattern.sub(lambda match: replacements[match.group(0)], text)


def make_readable(path: Path) -> None:
    """World-readable files and world-enterable folders (nginx workers run as nobody)."""
    for folder, _dirs, files in os.walk(path):  # symbolic links are neither followed nor changed
        os.chmod(folder, 0o755)
        for name in files:
            if not os.path.islink(os.path.join(folder, name)):
                os.chmod(os.path.join(folder, name), 0o644)


def make_certificate(folder: Path) -> Path:
    """A self-signed certificate for localhost, where certbot would write it; returns fullchain.pem."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
            str(folder / "privkey.pem"),
            "-out",
            str(folder / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return folder / "fullchain.pem"


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self):
        self._lock = threading.Lock()
        self._messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self._messages.append(envelope.content)
        return "250 OK"

    @property
    def messages(self) -> list[bytes]:
        with self._lock:
            return list(self._messages)


class Process:
    """A child process in its own process group; output goes to a log file in T/logs."""

    def __init__(self, name: str, args: list[str], logs: Path, **kwargs):
        self.name = name
        self.log = logs / f"{name}.log"
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def check_running(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.output()[-4000:]}")

    def stop(self) -> None:
        """SIGTERM to the whole group (gunicorn's workers too), then SIGKILL after a bounded wait."""
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.popen.pid, signal.SIGKILL)  # anything left in the group, e.g. orphaned workers
        try:
            self.popen.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pass


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _exchange(connection: http.client.HTTPConnection, method: str, path: str, body, headers):
    """Send one request on a fresh connection and read the whole answer; returns (response, body)."""
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def https_request(
    port: int,
    path: str,
    cafile: Path,
    host: str = "localhost",
    method: str = "GET",
    body: bytes | None = None,
    headers: dict | None = None,
    timeout: float = 10.0,
    source: str | None = None,
):
    """One request over HTTPS, verifying the test certificate; returns (response, body).

    source: the client's address, another loopback address (127.0.0.2, ...) to be another visitor
    for nginx's per-address limit.
    """
    context = ssl.create_default_context(cafile=str(cafile))
    connection = http.client.HTTPSConnection(
        host, port, context=context, timeout=timeout, source_address=(source, 0) if source else None
    )
    return _exchange(connection, method, path, body, headers)


def http_request(
    port: int,
    path: str,
    host: str = "localhost",
    method: str = "GET",
    body: bytes | None = None,
    headers: dict | None = None,
    timeout: float = 10.0,
):
    """One plain-HTTP request; returns (response, body)."""
    return _exchange(http.client.HTTPConnection(host, port, timeout=timeout), method, path, body, headers)


@dataclass
class CurlResponse:
    """What curl saw: the status, the headers (an http.client.HTTPMessage) and the protocol ("1.1" or "2")."""

    status: int
    headers: http.client.HTTPMessage
    protocol: str


def curl_request(
    d: "Deployment",
    path: str,
    http2: bool,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict | None = None,
    timeout: float = 20.0,
    source: str = "127.0.0.1",
):
    """One request over HTTPS with curl, which speaks HTTP/2 as browsers do; returns (CurlResponse, body).

    source: the client's loopback address, as for https_request().
    """
    base = d.root / "tmp" / f"curl-{secrets.token_hex(4)}"
    args = [
        CURL,
        "--silent",
        "--show-error",
        "--http2" if http2 else "--http1.1",
        "--cacert",
        str(d.cert),
        "--max-time",
        str(timeout),
        "--dump-header",
        f"{base}.head",
        "--output",
        f"{base}.body",
        "--write-out",
        "%{http_version}",
        "--request",
        method,
        "--header",
        "Expect:",
        "--interface",
        source,
    ]
    for name, value in (headers or {}).items():
        args += ["--header", f"{name}: {value}"]
    if body is not None:
        Path(f"{base}.sent").write_bytes(body)
        args += ["--data-binary", f"@{base}.sent"]
    result = subprocess.run([*args, f"{d.url}{path}"], capture_output=True, text=True, timeout=timeout + 10)
    if result.returncode != 0:
        raise RuntimeError(f"curl {path} failed ({result.returncode}): {result.stderr}")
    status_line, _, rest = Path(f"{base}.head").read_bytes().partition(b"\r\n")
    response = CurlResponse(int(status_line.split()[1]), http.client.parse_headers(io.BytesIO(rest)), result.stdout)
    return response, Path(f"{base}.body").read_bytes()


# --- the deployment ----------------------------------------------------------------------------------


@dataclass
class Deployment:
    root: Path
    http_port: int
    https_port: int
    socket: Path
    smtp_port: int
    ipv6: bool
    cert: Path
    env: dict
    security_headers: str = ""
    nginx_test_output: str = ""
    inbox: Inbox = field(default_factory=Inbox)
    processes: list = field(default_factory=list)
    controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def srv(self) -> Path:
        return self.root / "srv" / "rsct"

    @property
    def cache(self) -> Path:
        """nginx's page cache (proxy_cache_path)."""
        return self.root / "var" / "cache" / "nginx" / "rsct"

    @property
    def snippets(self) -> Path:
        return self.root / "etc" / "nginx" / "snippets"

    @property
    def site_file(self) -> Path:
        return self.root / "etc" / "nginx" / "sites-available" / "rsct"

    @property
    def nginx_conf(self) -> Path:
        return self.root / "etc" / "nginx" / "nginx.conf"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def request(self, path: str, **kwargs):
        """A request to the site over HTTPS, as https_request()."""
        return https_request(self.https_port, path, self.cert, **kwargs)

    def flask(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(VENV_BIN / "flask"), "--app", "app", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def process(self, name: str) -> Process:
        return next(process for process in self.processes if process.name == name)

    def diagnostics(self) -> str:
        """Every log, for a failure message."""
        parts = []
        for log in sorted(self.logs.glob("*")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def production_env(deployment_root: Path, https_port: int, smtp_port: int) -> dict:
    """The environment DEPLOY.md's /etc/rsct/rsct.env gives the services, for loopback."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("FLASK_", "RSCT_"))}
    env.update(
        {
            "FLASK_CONFIG": "production",
            "RSCT_WORKERS": "2",
            "FLASK_INSTANCE_PATH": str(deployment_root / "srv" / "rsct" / "instance"),
            "FLASK_SITE_URL": f"https://localhost:{https_port}",
            "FLASK_TRUSTED_HOSTS": "localhost,127.0.0.1",
            "FLASK_PROXY_COUNT": "1",
            "FLASK_SECRET_KEY": secrets.token_urlsafe(36),  # 48 characters
            "FLASK_INQUIRY_SIGNING_KEYS": secrets.token_urlsafe(36),
            "FLASK_MAIL_SERVER": "127.0.0.1",
            "FLASK_MAIL_PORT": str(smtp_port),
            "FLASK_MAIL_USE_TLS": "false",
            "FLASK_MAIL_DEFAULT_SENDER": SENDER,
            "FLASK_INQUIRY_RECIPIENT": RECIPIENT,
            "FLASK_MIN_FILL_SECONDS": "0",
        }
    )
    return env


def prepare(root: Path) -> Deployment:
    """Lay out T and render every file; starts nothing."""
    ipv6 = ipv6_loopback()
    http_port, https_port = free_port(ipv6), free_port(ipv6)
    smtp_port = free_port()
    for folder in (
        "srv/rsct/app/deploy/nginx",
        "etc/nginx/snippets",
        "etc/nginx/sites-available",
        "var/www/letsencrypt",
        "var/cache/nginx",
        "tmp",
        "logs",
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
    deployment = Deployment(
        root=root,
        http_port=http_port,
        https_port=https_port,
        socket=root / socket_unit()["ListenStream"].lstrip("/"),
        smtp_port=smtp_port,
        ipv6=ipv6,
        cert=make_certificate(root / "etc" / "letsencrypt" / "live" / "localhost"),
        env=production_env(root, https_port, smtp_port),
    )
    # What nginx serves itself: the static files and its pages for errors, as in /srv/rsct/app.
    shutil.copytree(ROOT / "static", deployment.srv / "app" / "static")
    for page in (DEPLOY / "nginx").glob("_*.html"):
        shutil.copy(page, deployment.srv / "app" / "deploy" / "nginx")
    shutil.copy(DEPLOY / "nginx" / "proxy.conf", deployment.snippets / "rsct-proxy.conf")
    shutil.copy(DEPLOY / "nginx" / "tls.conf", deployment.snippets / "rsct-tls.conf")
    deployment.site_file.write_text(render_site(deployment))
    deployment.nginx_conf.write_text(nginx_conf(deployment))
    make_readable(root)  # T holds no secret but the key, which only the master (root) reads
    os.chmod(deployment.cert.parent / "privkey.pem", 0o600)
    return deployment


def render_site(d: Deployment) -> str:
    """deploy/nginx/rsct.conf for loopback: domain, certificate, folders, ports."""
    text = (DEPLOY / "nginx" / "rsct.conf").read_text()
    ipv6_http = f"listen [::1]:{d.http_port};" if d.ipv6 else ""
    ipv6_https = f"listen [::1]:{d.https_port} ssl http2;" if d.ipv6 else ""
    return render(
        text,
        {
            "rsct.example.org": "localhost",
            # certbot's paths; after the domain was replaced, this is what the file names
            "/etc/letsencrypt/live/rsct.example.org/": f"{d.cert.parent}/",
            "/srv/rsct": str(d.srv),
            "/etc/nginx/snippets/": f"{d.snippets}/",
            "listen 80;": f"listen 127.0.0.1:{d.http_port};",
            "listen [::]:80;": ipv6_http,
            "listen 443 ssl http2;": f"listen 127.0.0.1:{d.https_port} ssl http2;",
            "listen [::]:443 ssl http2;": ipv6_https,
            "listen 80 default_server;": f"listen 127.0.0.1:{d.http_port} default_server;",
            "listen [::]:80 default_server;": ipv6_http.replace(";", " default_server;"),
            "listen 443 ssl http2 default_server;": f"listen 127.0.0.1:{d.https_port} ssl http2 default_server;",
            "listen [::]:443 ssl http2 default_server;": ipv6_https.replace(";", " default_server;"),
            # Behind 443 the redirect needs no port; on a free port it must carry it, or nothing can follow it.
            "return 301 https://rsct.example.org$request_uri;": f"return 301 https://localhost:{d.https_port}$request_uri;",
            "server unix:/run/rsct/web.sock;": f"server unix:{d.socket};",
            "/var/www/letsencrypt": str(d.root / "var" / "www" / "letsencrypt"),
            "/var/cache/nginx/rsct": str(d.cache),
        },
        "deploy/nginx/rsct.conf",
    )


def nginx_conf(d: Deployment) -> str:
    """The test's own main nginx.conf: foreground, everything inside T, the rendered site included."""
    t = d.root
    user = f"user {socket_unit()['SocketUser']};" if os.geteuid() == 0 else ""
    return f"""daemon off;
{user}
master_process on;
worker_processes 1;
pid {t}/nginx.pid;
error_log {t}/logs/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {t}/logs/nginx-access.log;
    client_body_temp_path {t}/tmp/client_body;
    proxy_temp_path {t}/tmp/proxy;
    fastcgi_temp_path {t}/tmp/fastcgi;
    uwsgi_temp_path {t}/tmp/uwsgi;
    scgi_temp_path {t}/tmp/scgi;
    include {d.site_file};
}}
"""


def write_security_headers(d: Deployment) -> str:
    """DEPLOY.md step 6: the snippet is the app's own `flask security-headers`, run with the production settings."""
    result = d.flask("security-headers")
    if result.returncode != 0:
        raise RuntimeError(f"flask security-headers failed:\n{result.stderr}")
    (d.snippets / "rsct-security-headers.conf").write_text(result.stdout)
    d.security_headers = result.stdout
    return result.stdout


def wait_until(check, what: str, deployment: Deployment, timeout: float = START_SECONDS) -> None:
    """Poll check() until it is true; fail with every log when a process died or time ran out."""
    deadline = time.monotonic() + timeout
    while True:
        for process in deployment.processes:
            process.check_running()
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {timeout:.0f} s\n{deployment.diagnostics()}")
        time.sleep(0.1)


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket: what nginx does to reach gunicorn."""

    def __init__(self, path: Path, timeout: float = 10.0):
        super().__init__("localhost", timeout=timeout)
        self.path = str(path)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def unix_request(
    path: Path,
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict | None = None,
    timeout: float = 10.0,
):
    """One request straight to gunicorn's socket; returns (response, body)."""
    return _exchange(UnixHTTPConnection(path, timeout), method, url, body, {"Host": "localhost", **(headers or {})})


def socket_unit() -> dict[str, str]:
    """deploy/systemd/rsct-web.socket's [Socket] settings."""
    text = (DEPLOY / "systemd" / "rsct-web.socket").read_text()
    section = text.split("[Socket]", 1)[1].split("\n[", 1)[0]
    return dict(line.split("=", 1) for line in section.splitlines() if "=" in line and not line.startswith("#"))


def bind_socket(d: Deployment) -> socket.socket:
    """What systemd does for rsct-web.socket: a listening Unix socket with the unit's owner and mode."""
    unit = socket_unit()
    d.socket.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(d.socket.parent, 0o755)  # systemd's DirectoryMode= default
    d.socket.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(d.socket))
    os.chmod(d.socket, int(unit["SocketMode"], 8))
    if os.geteuid() == 0:
        os.chown(d.socket, pwd.getpwnam(unit["SocketUser"]).pw_uid, pwd.getpwnam(unit["SocketGroup"]).pw_gid)
    listener.listen(128)
    return listener


# Started in place of gunicorn: the socket becomes fd 3 and LISTEN_PID names this process, which exec keeps.
HAND_OVER = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); "
    "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid())); os.execv(sys.argv[2], sys.argv[2:])"
)


def _gunicorn_answers(d: Deployment) -> bool:
    return unix_request(d.socket, "/healthz", timeout=2)[0].status == 200


def start(deployment: Deployment) -> None:
    """SMTP server, gunicorn, the sender and nginx, in that order; each must answer before the next."""
    d = deployment
    d.controller = Controller(
        d.inbox, hostname="127.0.0.1", port=d.smtp_port, ready_timeout=10, server_hostname="mx.test.invalid"
    )
    d.controller.start()
    start_gunicorn(d)
    d.processes.append(
        Process("sender", [str(VENV_BIN / "flask"), "--app", "app", "outbox", "run"], d.logs, cwd=ROOT, env=d.env)
    )
    test = subprocess.run(
        [NGINX, "-t", "-c", str(d.nginx_conf), "-p", f"{d.root}/"], capture_output=True, text=True, timeout=30
    )
    d.nginx_test_output = test.stderr
    if test.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{test.stderr}")
    d.processes.append(Process("nginx", [NGINX, "-c", str(d.nginx_conf), "-p", f"{d.root}/"], d.logs, cwd=d.root))
    wait_until(lambda: d.request("/healthz", timeout=2)[0].status == 200, "nginx over HTTPS", d)
    wait_until(lambda: "Outbox sender started" in d.process("sender").output(), "the sender", d)


def start_gunicorn(d: Deployment) -> None:
    """rsct-web.service's command, from the app folder, with the production environment and the unit's socket.

    systemd keeps its copy of the socket open; this module closes its own once gunicorn has it, so
    that a stopped gunicorn is an app that is down (as when systemd gives up restarting it).
    """
    listener = bind_socket(d)
    try:
        command = [
            sys.executable,
            "-c",
            HAND_OVER,
            str(listener.fileno()),
            str(VENV_BIN / "gunicorn"),
            "-c",
            "deploy/gunicorn.conf.py",
            "app:create_app()",
        ]
        d.processes.insert(0, Process("gunicorn", command, d.logs, cwd=ROOT, env=d.env, pass_fds=(listener.fileno(),)))
    finally:
        listener.close()
    wait_until(lambda: _gunicorn_answers(d), "gunicorn", d)


def stop_gunicorn(d: Deployment) -> None:
    process = d.process("gunicorn")
    process.stop()
    d.processes.remove(process)


def new_root() -> Path:
    """T: made by mkdtemp under /tmp (never under a 0700 folder such as pytest's tmp_path), then 0755."""
    root = Path(tempfile.mkdtemp(prefix="rsct-deploy-", dir="/tmp"))
    os.chmod(root, 0o755)
    return root


# --- the MDN HTTP Observatory ------------------------------------------------------------------------

OBSERVATORY = ROOT / "node_modules" / "@mdn" / "mdn-http-observatory"

# The package's CLI (bin/wrapper.js -> src/scan.js) scans http://HOST and https://HOST on the standard
# ports only, and its wrapper overwrites NODE_EXTRA_CA_CERTS with a bundle that --ignore-scripts never
# builds. This driver does what src/scanner/index.js's scan() does, line for line, with the package's
# own retriever, tests and grader, but passes the two loopback ports to the retriever (which supports
# them); node trusts the test certificate through NODE_EXTRA_CA_CERTS.
OBSERVATORY_DRIVER = """
const [pkg, host, httpPort, httpsPort, path] = process.argv.slice(2);
const { retrieve } = await import(pkg + "/src/retriever/retriever.js");
const { ALL_TESTS, NUM_TESTS, ALGORITHM_VERSION } = await import(pkg + "/src/constants.js");
const { getGradeForScore, getScoreModifier } = await import(pkg + "/src/grader/grader.js");
const { MINIMUM_SCORE_FOR_EXTRA_CREDIT } = await import(pkg + "/src/grader/charts.js");

const r = await retrieve(host, { httpPort, httpsPort, path });
if (!r.responses.auto) {
  console.log(JSON.stringify({ error: "The site seems to be down." }));
  process.exit(1);
}
const results = ALL_TESTS.map((test) => test(r));
let testsPassed = 0, scoreWithExtraCredit = 100, uncurvedScore = 100;
for (const result of results) {
  if (result.result) {
    result.scoreModifier = getScoreModifier(result.result);
    testsPassed += result.pass ? 1 : 0;
    scoreWithExtraCredit += result.scoreModifier;
    if (result.scoreModifier < 0) uncurvedScore += result.scoreModifier;
  }
}
const score = uncurvedScore >= MINIMUM_SCORE_FOR_EXTRA_CREDIT ? scoreWithExtraCredit : uncurvedScore;
const final = getGradeForScore(score);
console.log(JSON.stringify({
  scan: { algorithmVersion: ALGORITHM_VERSION, grade: final.grade, score: final.score,
          statusCode: r.responses.auto.status, testsPassed, testsFailed: NUM_TESTS - testsPassed,
          testsQuantity: NUM_TESTS },
  tests: Object.fromEntries(results.map((result) => [result.constructor.name, result])),
}, null, 2));
"""


def observatory_stubs() -> None:
    """The data files the package's postinstall would download (skipped): nothing preloaded, no TLD list."""
    conf = OBSERVATORY / "conf"
    for name, empty in (("hsts-preload.json", "{}"), ("tld-list.json", "[]")):
        if not (conf / name).exists():
            (conf / name).write_text(empty + "\n")


def observatory_scan(d: Deployment, node: str, path: str = "/", timeout: float = 45) -> dict:
    """Scan the deployment; returns the scanner's JSON (scan grade and score, and each test's result)."""
    observatory_stubs()
    driver = d.root / "observatory-scan.mjs"
    driver.write_text(OBSERVATORY_DRIVER)
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(d.cert)}
    result = subprocess.run(
        [node, str(driver), str(OBSERVATORY), "localhost", str(d.http_port), str(d.https_port), path],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=d.root,
    )
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise RuntimeError(
            f"the Observatory printed no JSON (exit {result.returncode}):\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        ) from None
