"""One inquiry through a real MTA: Debian's Postfix, started by the test on loopback with its own configuration
directory, relaying to an aiosmtpd server. The email as received after that hop verifies with exit status 0."""

import os
import re
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from helpers import Visitor, deliver, require_tool
from smtp_servers import Inbox, free_port, running_smtp, smtp_settings

START_SECONDS = 20.0


@contextmanager
def running_postfix(relay_port: int):
    """A private Postfix instance on 127.0.0.1 (a free port) that relays everything to 127.0.0.1:relay_port."""
    require_tool(shutil.which("postfix") is not None, "Postfix (apt-get install postfix)")
    require_tool(os.geteuid() == 0, "root, to start a private Postfix instance")
    # Not under pytest's tmp_path: Postfix's daemons run as the postfix user and must reach the queue.
    folder = Path(tempfile.mkdtemp(prefix="rsct-postfix-"))
    folder.chmod(0o755)
    port = free_port()
    master = Path("/etc/postfix/master.cf").read_text()
    master = re.sub(r"(?m)^smtp(\s+)inet(\s+\S+\s+\S+\s+)\S+", rf"127.0.0.1:{port}\1inet\2n", master)
    master = re.sub(r"(?m)^(\S+\s+(?:unix|inet|fifo|unix-dgram|pass)\s+\S+\s+\S+\s+)y(\s)", r"\1n\2", master)
    (folder / "master.cf").write_text(master)  # no chroot: the private queue has no copy of /etc
    (folder / "main.cf").write_text(f"""compatibility_level = 3.6
queue_directory = {folder}/queue
data_directory = {folder}/data
maillog_file = {folder}/maillog
maillog_file_prefixes = {folder}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.test.invalid
mydestination =
relayhost = [127.0.0.1]:{relay_port}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtp_tls_security_level = none
alias_maps =
alias_database =
""")
    (folder / "queue").mkdir()
    (folder / "data").mkdir()
    shutil.chown(folder / "data", "postfix")
    command = ["postfix", "-c", str(folder)]
    started = subprocess.run([*command, "start"], capture_output=True, text=True, timeout=60)
    try:
        assert started.returncode == 0, (started.stdout, started.stderr, _log(folder))
        deadline = time.monotonic() + START_SECONDS
        while subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, _log(folder)
            time.sleep(0.1)
        yield port, folder
    finally:
        pid_file = folder / "queue" / "pid" / "master.pid"
        master_pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        subprocess.run([*command, "stop"], capture_output=True, timeout=60)
        deadline = time.monotonic() + START_SECONDS
        while master_pid and _alive(master_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _log(folder: Path) -> str:
    log = folder / "maillog"
    return log.read_text()[-2000:] if log.exists() else "(no maillog)"


def test_an_inquiry_relayed_by_postfix_verifies(make_app, tmp_path):
    inbox = Inbox()
    with running_smtp(inbox) as relay_port, running_postfix(relay_port) as (postfix_port, folder):
        app = make_app(**smtp_settings(postfix_port))
        assert (
            Visitor(app.test_client())
            .submit(
                contact_method="email",
                email="zoe.reader@bücher.example",
                phone="",
                name="Zoë Núñez",
                message="Ça va?\nSecond line.",
            )
            .status_code
            == 303
        )
        (reference,) = deliver(app).delivered
        (received,) = inbox.wait_for(1, timeout=30) or [None]
        assert received is not None, _log(folder)
    assert "by mx.test.invalid (Postfix)" in received.message["Received"]  # it really went through Postfix
    saved = tmp_path / "received.eml"
    saved.write_bytes(received.content)
    result = app.test_cli_runner().invoke(args=["inquiry", "verify", str(saved)])
    assert result.exit_code == 0, result.output
    assert f"Authentic: inquiry {reference}" in result.output and "Name: Zoë Núñez" in result.output
