"""Backups leave the machine: deploy/rsct-backup, started as rsct-backup.service starts it, sends an encrypted
copy to a real restic repository (a local folder here, SFTP or S3 in production), and DEPLOY.md's restore
command brings the database back from it."""

import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, require_tool

DEPLOY_MD = (ROOT / "DEPLOY.md").read_text()
OWNER = pwd.getpwuid(os.geteuid()).pw_name


def env_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o640)
    return path


def settings(tmp_path: Path, repository: Path) -> tuple[Path, Path]:
    """The shipped examples, filled in as an operator would, with the repository a folder on this machine."""
    site = (ROOT / "deploy" / "rsct.env.example").read_text()
    site = site.replace("FLASK_SECRET_KEY=CHANGE-ME", "FLASK_SECRET_KEY=" + "s" * 48)
    site = site.replace("FLASK_INQUIRY_SIGNING_KEYS=CHANGE-ME", "FLASK_INQUIRY_SIGNING_KEYS=" + "k" * 48)
    site = site.replace("/srv/rsct/instance", str(tmp_path / "instance"))
    restic = (ROOT / "deploy" / "restic.env.example").read_text()
    restic = restic.replace(
        "RESTIC_REPOSITORY='sftp:backup@backup.example.org:rsct'", f"RESTIC_REPOSITORY='{repository}'"
    )
    restic = restic.replace("RESTIC_PASSWORD=CHANGE-ME", "RESTIC_PASSWORD='a long $ecret `passphrase`'")
    return env_file(tmp_path / "rsct.env", site), env_file(tmp_path / "restic.env", restic)


def with_files(*files: Path, command: list[str], cache: Path) -> subprocess.CompletedProcess:
    """A command with the files' values, as the unit gives them (check_env.py --exec, the unit's ExecStartPre)."""
    env = {
        "PATH": os.environ["PATH"],
        "RSCT_VENV": str(Path(sys.executable).parent.parent),
        "RESTIC_CACHE_DIR": str(cache),
    }
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "deploy" / "check_env.py"),
            "--owner",
            OWNER,
            "--exec",
            *map(str, files),
            "--",
            *command,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


RESTORE = "dump latest /rsct.sqlite3 >"  # DEPLOY.md's restore command (rrestic is restic), before the file it writes


def test_a_backup_leaves_the_machine_encrypted_and_restores(make_app, tmp_path):
    require_tool(shutil.which("restic") is not None, "restic (apt-get install restic)")
    app = make_app()
    with app.test_client() as client:
        response = client.post(
            "/contact",
            data={"name": "Offsite Test", "contact_method": "call", "phone": "203 555 0149", "form_token": "t-offsite"},
        )
    assert response.status_code in (200, 303), response.status_code
    with sqlite3.connect(app.config["DATABASE"]) as db:
        (reference,) = db.execute("SELECT reference FROM inquiries").fetchone()

    repository, cache = tmp_path / "offsite", tmp_path / "cache"
    site, restic = settings(tmp_path, repository)
    assert with_files(restic, command=["restic", "init"], cache=cache).returncode == 0
    for _ in range(2):  # safe to run twice
        result = with_files(site, restic, command=["sh", "deploy/rsct-backup"], cache=cache)
        assert result.returncode == 0, result.stderr
        assert f"Backed up off the machine to {repository}" in result.stdout

    check = with_files(restic, command=["restic", "check"], cache=cache)
    assert check.returncode == 0 and "no errors were found" in check.stdout, check.stdout + check.stderr
    snapshots = json.loads(with_files(restic, command=["restic", "snapshots", "--json"], cache=cache).stdout)
    # forget --keep-daily 7: one a day for a week; two runs on one day leave that day's last.
    kept = {(snap["hostname"], tuple(snap["tags"]), tuple(snap["paths"])) for snap in snapshots}
    assert kept == {("rsct", ("rsct",), ("/rsct.sqlite3",))} and 1 <= len(snapshots) <= 2  # 2 across midnight
    # Encrypted: the visitor's name is nowhere in the repository's files.
    assert not any(b"Offsite Test" in path.read_bytes() for path in repository.rglob("*") if path.is_file())

    assert RESTORE in DEPLOY_MD
    restored = tmp_path / "restored.sqlite3"
    dump = with_files(restic, command=["sh", "-c", f"restic {RESTORE} {restored}"], cache=cache)
    assert dump.returncode == 0, dump.stderr
    with sqlite3.connect(restored) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        row = db.execute("SELECT reference FROM inquiries WHERE reference = ?", (reference,)).fetchone()
    assert row == (reference,)


def test_without_a_repository_the_backup_fails_loudly_after_the_local_copy(make_app, tmp_path):
    """A missing off-site setting fails the unit (and so alerts) rather than passing silently."""
    make_app()
    site, _ = settings(tmp_path, tmp_path / "offsite")
    empty = env_file(tmp_path / "restic.env", "# nothing yet\n")
    result = with_files(site, empty, command=["sh", "deploy/rsct-backup"], cache=tmp_path / "cache")
    assert result.returncode != 0
    assert "RESTIC_REPOSITORY" in result.stderr and "DEPLOY.md" in result.stderr
    assert len(list((tmp_path / "instance" / "backups").glob("rsct-*.sqlite3"))) == 1


def test_the_unit_runs_the_tested_script_with_both_files_checked():
    text = (ROOT / "deploy" / "systemd" / "rsct-backup.service").read_text()
    assert "ExecStart=/srv/rsct/app/deploy/rsct-backup" in text
    assert "check_env.py /etc/rsct/rsct.env /etc/rsct/restic.env" in text
    assert "EnvironmentFile=/etc/rsct/restic.env" in text
