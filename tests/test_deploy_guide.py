"""DEPLOY.md's commands, read as an operator runs them: every step safe to run twice, the restore stops
everything that opens the database, and an upgrade enables every timer a release ships."""

import fnmatch
import re
import shlex
import subprocess

from helpers import ROOT

GUIDE = (ROOT / "DEPLOY.md").read_text()
UNITS = sorted(path.name for path in (ROOT / "deploy" / "systemd").iterdir())
TIMERS = {name for name in UNITS if name.endswith(".timer")}


def commands() -> list[str]:
    """Every shell line in the guide's sh blocks, continuation lines joined."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE, re.S)
    return [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def section(title: str) -> str:
    return GUIDE.split(title, 1)[1].split("\n## ", 1)[0]


def timers_named_by(line: str) -> set[str]:
    """The units a line's `$(cd .../deploy/systemd && ls *.timer)` expands to, run on this checkout."""
    inner = re.search(r"\$\((cd \S*deploy/systemd && ls \*\.timer)\)", line)
    assert inner, line
    command = inner.group(1).replace("/srv/rsct/app/", f"{ROOT}/")
    if command.startswith("cd deploy/"):
        command = f"cd {ROOT}/{command[3:]}"
    return set(subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout.split())


def test_every_step_is_safe_to_run_twice():
    lines = commands()
    problems = []
    for line in lines:
        if re.search(r"\bln -s\b", line) and "ln -sf" not in line:
            problems.append(f"ln without -f fails the second time: {line}")
        if "git clone" in line and not line.startswith("test -d"):
            problems.append(f"an unguarded clone fails the second time: {line}")
        if re.search(r"install .*\.env\.example /etc/rsct/", line) and not line.startswith("test -e"):
            problems.append(f"a second run would overwrite the operator's secrets: {line}")
        if ">> /etc/rsct/" in line and "grep -q" not in line:
            problems.append(f"a second run would add the line again: {line}")
        if line.startswith("adduser") or ("python3 -m venv" in line and "test -x" not in line):
            problems.append(f"fails or rebuilds the second time: {line}")
        if line.startswith("certbot"):
            flags = set(shlex.split(line))
            missing = {"--non-interactive", "--agree-tos", "-m", "--keep-until-expiring"} - flags
            if missing:
                problems.append(f"certbot would ask or renew again without {sorted(missing)}")
    assert problems == []
    assert any(line.startswith("ufw allow OpenSSH") and "80/tcp" in line and "443/tcp" in line for line in lines)


def test_the_restore_stops_everything_that_opens_the_database_and_starts_it_all_again():
    restore = section("### Restore")
    stop = next(line for line in commands() if line.startswith("systemctl stop") and line in restore)
    patterns = shlex.split(stop.split("#")[0])[2:]
    opening = [name for name in UNITS if "@" not in name]  # every service, timer and the socket
    assert [name for name in opening if not any(fnmatch.fnmatch(name, p) for p in patterns)] == []
    start = next(line for line in commands() if line.startswith("systemctl start rsct-web.socket") and line in restore)
    assert {"rsct-web.socket", "rsct-web", "rsct-sender"} <= set(start.split()) and timers_named_by(start) == TIMERS


def test_install_and_upgrade_enable_every_shipped_timer_and_the_socket():
    for title in ("## 5. Services and timers", "## Upgrading"):
        enable = [line for line in commands() if line.startswith("systemctl enable --now") and line in section(title)]
        assert any("rsct-web.socket" in line for line in enable), title
        assert any(timers_named_by(line) == TIMERS for line in enable if "ls *.timer" in line), title
