"""`make run`: the site and the mail sender together, for development; Ctrl-C or SIGTERM stops both cleanly.

Run from the project root as `python -m rsct.devserver`. PORT (default 5000) moves the site, and its
canonical address (FLASK_SITE_URL) with it unless that is set.

The two servers run in process groups of their own, so that a stop reaches each of them once, from
here: a second Ctrl-C in the middle of the web server's shutdown would end it with a traceback. In a
terminal this process also takes the terminal's Ctrl-C for itself, so `make` (which would otherwise
die of the signal) sees it end normally and exits 0.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time

import config

STOP_SECONDS = 30  # the sender finishes the message in hand first; its SMTP deadline is shorter than this


def main() -> int:
    port = os.environ.get("PORT", "5000")
    if not port.isdigit() or not 0 < int(port) < 65536:
        print(f"PORT must be a number from 1 to 65535, not {port!r}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env.setdefault("FLASK_SITE_URL", f"http://127.0.0.1:{port}")
    try:
        settings = config.load(env, os.path.abspath("instance"))
    except config.ConfigError as error:
        print(error.message, file=sys.stderr)
        return 2
    mail = (
        f"sent to {settings['MAIL_SERVER']}:{settings['MAIL_PORT']}"
        if settings["MAIL_SERVER"]
        else f"written to {os.path.relpath(os.path.join(settings['INSTANCE_PATH'], 'mail'))}/, not sent"
    )
    print(
        f"Running in development mode: the site is at http://127.0.0.1:{port} and mail is {mail}. Ctrl-C stops both.",
        flush=True,
    )

    flask = [sys.executable, "-m", "flask", "--app", "app"]
    # The instance folder, development secrets and database, made (or migrated) once before both start.
    if subprocess.run([*flask, "setup"], env=env, stdout=subprocess.DEVNULL).returncode != 0:
        return 2
    stopping = []
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stopping.append(True))
    terminal = _take_terminal()
    children = [
        subprocess.Popen([*flask, "outbox", "run"], env=env, process_group=0, preexec_fn=_end_with_parent),
        subprocess.Popen([*flask, "run", "--port", port], env=env, process_group=0, preexec_fn=_end_with_parent),
    ]
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.1)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for child in children:
            try:
                child.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        _give_back_terminal(terminal)
    if stopping:
        print("Stopped.", flush=True)
        return 0
    print("A server stopped on its own (see above); the other was stopped too.", file=sys.stderr)
    return 1


def _end_with_parent() -> None:
    """In the child, on Linux: SIGTERM when this process dies without stopping it (kill -9), so no server
    outlives it holding the port."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _take_terminal() -> tuple[int, int] | None:
    """When run in the foreground of a terminal, move into a process group of our own and make it the
    terminal's foreground, so that Ctrl-C reaches this process only (and not make, which would die of it)."""
    try:
        fd = sys.stdin.fileno()
        if not os.isatty(fd) or os.tcgetpgrp(fd) != os.getpgrp():
            return None
        before = os.getpgrp()
        os.setpgid(0, 0)
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background group may not change the foreground
        os.tcsetpgrp(fd, os.getpgrp())
        return fd, before
    except (OSError, ValueError):
        return None


def _give_back_terminal(terminal: tuple[int, int] | None) -> None:
    if terminal is None:
        return
    fd, before = terminal
    try:
        os.tcsetpgrp(fd, before)
    except OSError:
        pass  # make has gone already: nothing to give back


if __name__ == "__main__":
    sys.exit(main())
