"""The README's exit-status table, command by command: 0 success, 1 the command's "no", 2 could not do the job
(configuration errors and crashes included), 3 verify's "authentic, with additions", 4 a stuck outbox."""

import os
import subprocess
import sys

from rsct import verify

from helpers import ROOT


def flask(tmp_path, *args, **environ):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env.update({"FLASK_INSTANCE_PATH": str(tmp_path / "instance"), **environ})
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_configuration_error_exits_2_with_one_line(tmp_path):
    result = flask(tmp_path, "outbox", "status", FLASK_MAIL_PORT="many")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "Configuration error: FLASK_MAIL_PORT must be a number from 1 to 65535, not 'many'"
    )


def test_setup_then_read_only_commands_succeed(tmp_path):
    assert flask(tmp_path, "outbox", "status").returncode == 2  # no database yet: could not check
    assert not (tmp_path / "instance").exists()
    assert flask(tmp_path, "setup").returncode == 0
    assert flask(tmp_path, "outbox", "status").returncode == 0
    shown = flask(tmp_path, "inquiry", "show", "RSCT-ABCDEF")
    assert shown.returncode == 1 and "No inquiry RSCT-ABCDEF" in shown.stderr  # the command's "no"


def test_click_usage_errors_stay_2(runner):
    assert runner.invoke(args=["inquiry", "verify"]).exit_code == 2
    assert runner.invoke(args=["outbox", "status", "--no-such-option"]).exit_code == 2


def test_a_crash_exits_2_without_the_exception_message(runner, monkeypatch, tmp_path):
    def crash(keys, raw):
        words = raw.decode().split("\n")[-2]  # what a visitor typed, as an exception message might quote it
        raise RuntimeError(words)

    monkeypatch.setattr(verify, "check_email", crash)
    saved = tmp_path / "x.eml"
    saved.write_bytes(b"Subject: x\n\nQzxvisitor words from a note\n")
    result = runner.invoke(args=["inquiry", "verify", str(saved)])
    assert result.exit_code == 2
    assert "RuntimeError" in result.output and "Qzxvisitor" not in result.output
