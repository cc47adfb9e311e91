"""Exit 0 when a file's SHA-384 matches the pinned htmx integrity in config.py, else say why and exit 1."""

import base64
import hashlib
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import config  # noqa: E402

data = pathlib.Path(sys.argv[1]).read_bytes()
actual = "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()
if actual != config.HTMX_INTEGRITY:
    sys.exit(f"{sys.argv[1]}: SHA-384 is {actual}, expected {config.HTMX_INTEGRITY}; not installed.")
print(f"{sys.argv[1]}: integrity matches {config.HTMX_INTEGRITY}")
