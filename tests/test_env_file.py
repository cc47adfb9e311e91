"""The environment file is read one way: deploy/check_env.py, deploy/rsct-flask, systemd's own parser and a
POSIX shell all see the same values, and a broken line is refused with its number before anything runs."""

import glob
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, require_tool

CHECK = ROOT / "deploy" / "check_env.py"
OWNER = pwd.getpwuid(os.geteuid()).pw_name  # root in CI, as in production

# Values a generated password or a display name may hold; none of them may be expanded or run.
TRICKY = {
    "FLASK_MAIL_PASSWORD": 'pa$$word `touch MARKER` $(touch MARKER) "quoted"  two  spaces ${HOME}',
    "FLASK_MAIL_DEFAULT_SENDER": "RSCT website <website@rsct.example.org> # not a comment",
    "FLASK_OFFICE_HOURS": "Mon–Fri 9:00–5:00; call first!",
    "FLASK_SECRET_KEY": "Plain_value-1.2:3,4@x/y+z=w%",
    "FLASK_FACEBOOK_URL": "",
}

# The real parser systemd uses for EnvironmentFile= (load_env_file in its shared library), in a child process.
SYSTEMD_PARSER = """
import ctypes, glob, json, sys
lib = ctypes.CDLL(sys.argv[2])
pairs = ctypes.POINTER(ctypes.c_char_p)()
lib.load_env_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_char_p))]
status = lib.load_env_file(None, sys.argv[1].encode(), ctypes.byref(pairs))
assert status == 0, status
values, i = {}, 0
while pairs[i] is not None:
    key, _, value = pairs[i].decode().partition("=")
    values[key] = value
    i += 1
print(json.dumps(values))
"""


def write_env(tmp_path: Path, text: str, mode: int = 0o640) -> Path:
    path = tmp_path / "rsct.env"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def tricky_file(tmp_path: Path, marker: Path) -> tuple[Path, dict]:
    values = {key: value.replace("MARKER", str(marker)) for key, value in TRICKY.items()}
    lines = ["# settings with every character a password may hold", ""]
    lines += [
        f"{key}='{value}'" if value and key != "FLASK_SECRET_KEY" else f"{key}={value}" for key, value in values.items()
    ]
    return write_env(tmp_path, "\n".join(lines) + "\n"), values


def fake_venv(tmp_path: Path) -> Path:
    """A venv whose flask prints the environment and arguments it was started with."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    flask = bin_dir / "flask"
    flask.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "print(json.dumps({'argv': sys.argv[1:], 'env': dict(os.environ)}))\n"
    )
    flask.chmod(0o755)
    return tmp_path / "venv"


def rsct_flask(tmp_path: Path, env_file: Path, *args: str, extra_env: dict | None = None):
    env = {
        "PATH": os.environ["PATH"],
        "RSCT_APP": str(ROOT),
        "RSCT_ENV": str(env_file),
        "RSCT_VENV": str(fake_venv(tmp_path)),
        "RSCT_ENV_OWNER": OWNER,
        **(extra_env or {}),
    }
    return subprocess.run(
        ["sh", str(ROOT / "deploy" / "rsct-flask"), *args], env=env, capture_output=True, text=True, timeout=60
    )


def check(*args: str):
    return subprocess.run(
        [sys.executable, str(CHECK), "--owner", OWNER, *args], capture_output=True, text=True, timeout=60
    )


def systemd_reads(path: Path) -> dict:
    libraries = glob.glob("/usr/lib/*/systemd/libsystemd-shared-*.so") + glob.glob(
        "/lib/systemd/libsystemd-shared-*.so"
    )
    require_tool(bool(libraries), "systemd's shared library (apt-get install systemd)")
    result = subprocess.run(
        [sys.executable, "-c", SYSTEMD_PARSER, str(path), libraries[0]], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def shell_reads(path: Path, keys) -> dict:
    dump = f"{sys.executable} -c 'import json, os; print(json.dumps(dict(os.environ)))'"
    result = subprocess.run(
        ["sh", "-c", f'set -a; . "$1"; exec {dump}', "sh", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"]},
    )
    assert result.returncode == 0, result.stderr
    return {key: value for key, value in json.loads(result.stdout).items() if key in keys}


def test_every_reader_sees_the_same_values_and_nothing_is_run(tmp_path):
    marker = tmp_path / "expanded"
    path, values = tricky_file(tmp_path, marker)
    assert check(str(path)).returncode == 0

    result = rsct_flask(tmp_path, path, "outbox", "status")
    assert result.returncode == 0, result.stderr
    started = json.loads(result.stdout)
    assert started["argv"] == ["--app", "app", "outbox", "status"]
    assert {key: started["env"].get(key) for key in values} == values
    assert systemd_reads(path) == values
    assert shell_reads(path, values) == values
    assert not marker.exists(), "a backtick or $( ) was run"


def test_settings_exported_by_the_operator_shell_do_not_leak_in(tmp_path):
    path = write_env(tmp_path, "FLASK_CONFIG=production\n")
    result = rsct_flask(tmp_path, path, "routes", extra_env={"FLASK_DEBUG": "true", "FLASK_CONFIG": "development"})
    env = json.loads(result.stdout)["env"]
    assert (env["FLASK_CONFIG"], "FLASK_DEBUG" in env) == ("production", False)


@pytest.mark.parametrize(
    "line, why",
    [
        ("FLASK_MAIL_PASSWORD=pa$word", "has a $: put the value in single quotes"),
        ("FLASK_MAIL_PASSWORD=two words", "has a space"),
        ("FLASK_MAIL_PASSWORD=`secret`", "has a backtick"),
        ('FLASK_MAIL_PASSWORD="secret"', "has a double quote"),
        ("FLASK_MAIL_PASSWORD='it''s'", "single quote inside the quotes"),
        ("FLASK_MAIL_PASSWORD='back\\slash'", "has a backslash"),
        ("FLASK_MAIL_PASSWORD='never closed", "does not close on the same line"),
        ("FLASK_MAIL_PASSWORD = secret", "letters, digits and _ only"),
        ("export FLASK_MAIL_PASSWORD=secret", "letters, digits and _ only"),
        ("FLASK_MAIL_PASWORD=secret", "FLASK_MAIL_PASWORD is not a setting of this site"),
        ("FLASK_SECRET_KEY=again", "FLASK_SECRET_KEY is set again (first on line 2)"),
        ("FLASK_MAIL_PASSWORD=secret\r", "carriage return"),
        ("  FLASK_MAIL_PASSWORD=secret", "starts with a space"),
        ("just some words", "neither KEY=value nor a comment"),
    ],
    ids=lambda value: value[:24] if isinstance(value, str) else None,
)
def test_a_broken_line_is_refused_with_its_number_and_nothing_runs(tmp_path, line, why):
    path = write_env(tmp_path, f"# settings\nFLASK_SECRET_KEY={'s' * 48}\n\n{line}\nFLASK_DEBUG=false\n")
    for result in (check(str(path)), rsct_flask(tmp_path, path, "outbox", "status")):
        assert result.returncode == 2
        assert result.stdout == ""  # the command never started
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{path} line 4: "), lines
        assert why in result.stderr
        assert "s" * 48 not in result.stderr and "secret`" not in result.stderr  # never a value


def test_the_shipped_example_is_in_the_format(tmp_path):
    path = write_env(tmp_path, (ROOT / "deploy" / "rsct.env.example").read_text())
    assert check(str(path)).returncode == 0
    assert systemd_reads(path) == json.loads(
        check(
            "--exec",
            str(path),
            "--",
            sys.executable,
            "-c",
            ("import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('FLASK_')}))"),
        ).stdout
    )


@pytest.mark.parametrize("mode", [0o644, 0o660, 0o646])
def test_a_file_others_may_read_or_the_group_may_change_is_refused(tmp_path, mode):
    path = write_env(tmp_path, "FLASK_CONFIG=production\n", mode=mode)
    result = check(str(path))
    assert result.returncode == 2
    assert f"mode {mode:04o}" in result.stderr and "chmod 640" in result.stderr


def test_a_file_the_site_account_owns_is_refused(tmp_path):
    """The service must not be able to rewrite its own secrets: the file belongs to root."""
    require_tool(os.geteuid() == 0, "root (to give the file to another user)")
    path = write_env(tmp_path, "FLASK_CONFIG=production\n")
    os.chown(path, pwd.getpwnam("nobody").pw_uid, -1)
    result = subprocess.run([sys.executable, str(CHECK), str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "belongs to nobody, not root" in result.stderr
