"""gunicorn settings for one small VPS, behind nginx on the same machine.

Start: gunicorn -c deploy/gunicorn.conf.py "app:create_app()"

In production systemd's rsct-web.socket owns the listening Unix socket (only nginx's user may connect)
and hands it over (LISTEN_FDS); gunicorn then ignores `bind`. gunicorn is never exposed: a TCP address
is refused in production unless FLASK_ALLOW_TCP_BIND says so (benchmarks).
"""

import multiprocessing
import os
import socket
import sys

bind = os.environ.get("RSCT_BIND", "unix:/run/rsct/web.sock")
# Two workers per core plus one, capped: the app is small and waits mostly on SQLite's fsync.
workers = int(os.environ.get("RSCT_WORKERS", min(multiprocessing.cpu_count() * 2 + 1, 9)))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 2000
max_requests_jitter = 200
# X-Forwarded-* come from nginx: gunicorn trusts Unix-socket peers, and a TCP bind (benchmarks only)
# trusts loopback. The app's ProxyFix counts the hops.
forwarded_allow_ips = "127.0.0.1,::1"
# nginx keeps the access log; gunicorn's own log shows start-up and errors only (no visitor data).
accesslog = None
errorlog = "-"
loglevel = "info"
# No runtime control socket (gunicorn >= 25 makes one under $HOME, which is read-only for the
# sandboxed service, and which any second gunicorn of the same user would take over); systemctl
# reload/restart does what it offers.
control_socket_disable = True
# Private files: the database, its WAL and mail are created owner-only.
umask = 0o077


def tcp_listeners(server) -> list[str]:
    """The TCP addresses gunicorn would serve: the sockets systemd hands over, else its bind setting."""
    if os.environ.get("LISTEN_PID") == str(os.getpid()):  # systemd's sockets; bind is then unused
        fds, found = range(3, 3 + int(os.environ.get("LISTEN_FDS", "0"))), []
    else:
        fds = [address for address in server.cfg.address if isinstance(address, int)]
        found = [f"{address[0]}:{address[1]}" for address in server.cfg.address if isinstance(address, tuple)]
    for fd in fds:
        with socket.socket(fileno=os.dup(fd)) as inherited:
            if inherited.family in (socket.AF_INET, socket.AF_INET6):
                found.append("{}:{}".format(*inherited.getsockname()[:2]))
    return found


def on_starting(server):
    """Check the settings once, in the master, before any worker starts or anything is bound.

    A mistake stops gunicorn at once with the one-line error and status 3, which the unit does not restart
    (RestartPreventExitStatus=3), so systemd shows it failed. Otherwise each worker would exit with the
    error and the master would boot another, for ever. In production gunicorn serves only rsct-web.socket:
    a TCP address, by bind or handed over, is such a mistake unless FLASK_ALLOW_TCP_BIND says it is a
    benchmark, so that only nginx can reach it.
    """
    import config

    try:
        settings = config.load(os.environ, os.path.abspath("instance"))
        tcp = tcp_listeners(server)
        if tcp and settings["CONFIG_NAME"] == "production" and not settings["ALLOW_TCP_BIND"]:
            raise config.ConfigError(
                f"gunicorn would listen on TCP {', '.join(tcp)}; in production it serves only rsct-web.socket"
                " (set FLASK_ALLOW_TCP_BIND=true for a benchmark, never on a public server)"
            )
    except config.ConfigError as error:
        print(error.message, file=sys.stderr, flush=True)
        sys.exit(3)
