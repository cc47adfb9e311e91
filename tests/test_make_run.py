"""`make run` as a newcomer uses it: one notice, the site on the chosen PORT, and Ctrl-C or SIGTERM stop it cleanly."""

import fcntl
import os
import pty
import re
import shutil
import signal
import subprocess
import termios
import threading
import time
import urllib.request

import pytest

from helpers import ROOT, require_tool
from smtp_servers import free_port

VENV = ROOT / ".venv"
ERROR_WORDS = ("Segmentation fault", "Traceback", "Error", "error", "***", "Terminated")


class MakeRun:
    """`make run` on a terminal of its own (a pty), as someone types it, with the output collected."""

    def __init__(self, tmp_path, port: int):
        require_tool(shutil.which("make") is not None, "make")
        require_tool((VENV / "bin" / "python").exists(), ".venv (run: make test)")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
        env.update(PORT=str(port), FLASK_INSTANCE_PATH=str(tmp_path / "instance"))
        self.master, slave = pty.openpty()

        def own_terminal():
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

        # -o: never reinstall the venv from here, whatever the file times say.
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "-o", ".venv/.runtime", "run"],
            cwd=ROOT,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            preexec_fn=own_terminal,
        )
        os.close(slave)
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.url = f"http://127.0.0.1:{port}"

    def _read(self):
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # the terminal closed: everyone has gone
                return
            if not chunk:
                return
            self.chunks.append(chunk)

    @property
    def output(self) -> str:
        return b"".join(self.chunks).decode(errors="replace").replace("\r\n", "\n")

    def wait_until_serving(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200 and "Outbox sender started" in self.output:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("make run did not start:\n" + self.output)

    def finish(self) -> int:
        try:
            status = self.process.wait(timeout=40)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.reader.join(timeout=5)
        os.close(self.master)
        return status


@pytest.fixture
def make_run(tmp_path):
    run = MakeRun(tmp_path, free_port())
    yield run
    if run.process.poll() is None:
        os.killpg(run.process.pid, signal.SIGKILL)
        run.process.wait()


def test_ctrl_c_stops_the_site_and_the_sender_with_status_0_and_no_error(make_run):
    make_run.wait_until_serving()
    os.write(make_run.master, b"\x03")  # Ctrl-C, as the terminal delivers it
    status = make_run.finish()
    output = make_run.output
    assert status == 0, output
    assert "Outbox sender stopped." in output and "Stopped." in output
    assert [word for word in ERROR_WORDS if word in output] == [], output
    assert output.count("Running in development mode") == 1


def test_sigterm_stops_both_with_no_error_line(make_run):
    make_run.wait_until_serving()
    make_run.process.send_signal(signal.SIGTERM)  # make passes it on to what it runs
    status = make_run.finish()
    output = make_run.output
    assert "Outbox sender stopped." in output and "Stopped." in output
    assert [word for word in ERROR_WORDS if word in output] == [], output
    assert status == -signal.SIGTERM  # GNU make ends by the signal it was sent, after its children stopped


def test_port_moves_the_site_and_its_canonical_address(make_run):
    make_run.wait_until_serving()
    with urllib.request.urlopen(make_run.url + "/", timeout=5) as response:
        page = response.read().decode()
    assert re.search(rf'<link rel="canonical" href="{re.escape(make_run.url)}/?"', page), page[:2000]
    assert f"the site is at {make_run.url}" in make_run.output
    os.write(make_run.master, b"\x03")
    assert make_run.finish() == 0
