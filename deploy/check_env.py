"""Check the site's environment files, or run a command with their values. Python's standard library only
(with the site's venv it also knows the names of the site's settings, and flags a misspelt one).

    check_env.py FILE...                      exit 0, or name each broken line and exit 2
    check_env.py --exec FILE... -- COMMAND    check, then run COMMAND with the files' values

One strict format, which systemd (EnvironmentFile=) and this script read the same way, and so does
a POSIX shell: blank lines, comment lines starting with #, and KEY=value lines. A value is either
plain (letters, digits and _ @ % + = : , . / -) or in single quotes on one line, holding anything
but a single quote or a backslash. Nothing is expanded: a $ or a backtick in a quoted password is
just a character. Errors name the file, the line and what to change, never a value (they are secrets).

The file holds the site's keys: it must belong to root (or --owner) and be readable by the service's
group only (install -o root -g rsct -m 640), so that the service cannot rewrite its own secrets.
"""

import os
import pwd
import re
import stat
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
try:  # the site's settings, to catch a misspelt name; config.py needs the site's venv (click)
    from config import SETTINGS  # noqa: E402
except ImportError:
    SETTINGS = None

EXIT_BROKEN = 2
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]*\Z")
QUOTED = re.compile(r"'[^'\\]*'\Z")
NAMED = {" ": "a space", "\t": "a tab", "$": "a $", "`": "a backtick", '"': "a double quote", "'": "a single quote",
         "\\": "a backslash", "#": "a #", ";": "a ;", "&": "an &", "|": "a |", "<": "a <", ">": "a >", "~": "a ~",
         "!": "a !", "*": "a *", "?": "a ?"}  # fmt: skip
KNOWN = {setting.env for setting in SETTINGS} if SETTINGS else None  # None: names go unchecked


class EnvFileError(Exception):
    """One or more broken lines; the message has one line per problem."""


def problem_with_value(key: str, value: str) -> str | None:
    """Why a value is not in the format, or None."""
    if value.startswith("'"):
        if "\\" in value:
            return f"{key}'s value has a backslash; choose a value without one"
        if not value.endswith("'") or len(value) < 2:
            return f"{key}'s value opens a single quote that does not close on the same line"
        if not QUOTED.match(value):
            return f"{key}'s value has a single quote inside the quotes; choose a value without one"
        return None
    if PLAIN.match(value):
        return None
    if "\\" in value:
        return f"{key}'s value has a backslash; choose a value without one"
    odd = next(char for char in value if not PLAIN.match(char))
    what = NAMED.get(odd, f"the character {odd!r}" if odd.isascii() else "a non-ASCII character")
    return f"{key}'s value has {what}: put the value in single quotes, {key}='...'"


def parse(path: str) -> dict[str, str]:
    """The file's KEY -> value pairs; raises EnvFileError naming every broken line."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise EnvFileError(f"{path}: cannot read it ({error.strerror})") from None
    values, first_seen, problems = {}, {}, []
    for number, line_bytes in enumerate(raw.split(b"\n"), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{path} line {number}: is not UTF-8 text")
            continue
        why = None
        if "\r" in line:
            why = "ends in a carriage return (saved with Windows line endings): save it with Unix line endings"
        elif "\0" in line:
            why = "holds a NUL character"
        elif not line.strip() or line.startswith("#"):
            continue
        elif line[0].isspace():
            why = "starts with a space; write KEY=value from the first column"
        elif "=" not in line:
            why = "is neither KEY=value nor a comment starting with #"
        else:
            key, value = line.split("=", 1)
            if not NAME.match(key):
                why = "the name before = must be letters, digits and _ only (no spaces, no 'export')"
            elif key in first_seen:
                why = f"{key} is set again (first on line {first_seen[key]}); keep one"
            elif KNOWN is not None and key.startswith("FLASK_") and key not in KNOWN:
                why = f"{key} is not a setting of this site (see the settings table in README.md)"
            else:
                why = problem_with_value(key, value)
                first_seen[key] = number
                values[key] = value[1:-1] if value.startswith("'") else value
        if why:
            problems.append(f"{path} line {number}: {why}")
    if problems:
        raise EnvFileError("\n".join(problems))
    return values


def check_access(path: str, owner: str) -> None:
    """Raise EnvFileError unless the file belongs to owner and no one outside its group may read it."""
    info = os.stat(path)
    expected = pwd.getpwnam(owner).pw_uid
    if info.st_uid != expected:
        actual = next((entry.pw_name for entry in pwd.getpwall() if entry.pw_uid == info.st_uid), str(info.st_uid))
        raise EnvFileError(
            f"{path}: belongs to {actual}, not {owner}: the site's own account must not be able to change its"
            f" secrets (chown {owner} {path})"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o027:
        raise EnvFileError(f"{path}: mode {mode:04o} lets other users read or the group change it (chmod 640 {path})")


def load(paths: list[str], owner: str) -> dict[str, str]:
    """Every file checked and parsed, later files adding to earlier ones."""
    values, problems = {}, []
    for path in paths:
        try:
            check_access(path, owner)
            values.update(parse(path))
        except EnvFileError as error:
            problems.append(str(error))
        except (OSError, KeyError) as error:
            problems.append(f"{path}: cannot check it ({error})")
    if problems:
        raise EnvFileError("\n".join(problems))
    return values


def main(argv: list[str]) -> int:
    owner = "root"  # tests that run as an ordinary user name themselves
    if argv[:1] == ["--owner"]:
        owner, argv = argv[1], argv[2:]
    run = argv[:1] == ["--exec"]
    paths, command = (argv[1 : argv.index("--")], argv[argv.index("--") + 1 :]) if run and "--" in argv else (argv, [])
    if not paths or (run and not command):
        print(
            "usage: check_env.py [--owner USER] FILE...  |  check_env.py [--owner USER] --exec FILE... -- COMMAND",
            file=sys.stderr,
        )
        return EXIT_BROKEN
    try:
        values = load(paths, owner)
    except EnvFileError as error:
        print(error, file=sys.stderr)
        return EXIT_BROKEN
    if not run:
        return 0
    # As under systemd: the settings are the files', not whatever FLASK_* the operator's shell exported.
    environment = {key: value for key, value in os.environ.items() if not key.startswith("FLASK_")}
    environment.update(values)
    os.execvpe(command[0], command, environment)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
