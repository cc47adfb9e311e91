"""A configuration error stops the site at once, with one line, instead of looping or limping on."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from helpers import ROOT, require_tool

BAD_SETTING = "Configuration error: FLASK_RATE_LIMIT_COUNT must be a number from 1 to 10000, not '100000000'"


def test_gunicorn_with_a_bad_setting_stops_within_seconds_with_status_3(tmp_path):
    """Status 3 is what the shipped unit does not restart (RestartPreventExitStatus=3)."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    require_tool(
        gunicorn.exists() or shutil.which("gunicorn") is not None, "gunicorn (pip install -r requirements.txt)"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLASK_")},
        "FLASK_RATE_LIMIT_COUNT": "100000000",
        "FLASK_INSTANCE_PATH": str(tmp_path / "instance"),
        "RSCT_BIND": "127.0.0.1:0",
        "RSCT_WORKERS": "2",
    }
    started = time.monotonic()
    process = subprocess.Popen(
        [str(gunicorn), "-c", "deploy/gunicorn.conf.py", "app:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        raise AssertionError("gunicorn kept running with a bad setting:\n" + stderr[-2000:]) from None
    assert process.returncode == 3, stderr
    assert stderr.strip().splitlines()[-1] == BAD_SETTING
    assert "Booting worker" not in stderr  # refused in the master, before any worker
    print(f"gunicorn stopped in {time.monotonic() - started:.1f} s")


def test_the_web_unit_does_not_restart_on_a_configuration_error():
    unit = (ROOT / "deploy" / "systemd" / "rsct-web.service").read_text()
    assert "RestartPreventExitStatus=3" in unit.splitlines()
