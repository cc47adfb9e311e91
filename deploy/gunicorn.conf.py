"""gunicorn settings for one small VPS, behind nginx on the same machine.

Start: gunicorn -c deploy/gunicorn.conf.py "app:create_app()"
"""

import multiprocessing
import os
import sys

bind = os.environ.get("RSCT_BIND", "127.0.0.1:8000")
# Two workers per core plus one, capped: the app is small and waits mostly on SQLite's fsync.
workers = int(os.environ.get("RSCT_WORKERS", min(multiprocessing.cpu_count() * 2 + 1, 9)))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 2000
max_requests_jitter = 200
# Trust X-Forwarded-* only from nginx on this machine; the app's ProxyFix counts the hops.
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


def on_starting(server):
    """Check the settings once, in the master, before any worker starts.

    A mistake stops gunicorn at once with the one-line error and status 3, which the unit does not restart
    (RestartPreventExitStatus=3), so systemd shows it failed. Otherwise each worker would exit with the
    error and the master would boot another, for ever.
    """
    import config

    try:
        config.load(os.environ, os.path.abspath("instance"))
    except config.ConfigError as error:
        print(error.message, file=sys.stderr, flush=True)
        sys.exit(3)
