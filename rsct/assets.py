"""Static files with a content hash in their URL, so browsers keep them for a year and a release busts caches."""

import hashlib
import os
from functools import lru_cache

from flask import Flask, current_app, url_for


def init_app(app: Flask) -> None:
    """Make static_url() available in templates."""
    app.jinja_env.globals["static_url"] = static_url


def static_url(filename: str) -> str:
    """URL of a static file with a hash of its content."""
    return url_for("static", filename=filename, v=_file_hash(current_app.static_folder, filename))


@lru_cache(maxsize=64)
def _file_hash(folder: str, filename: str) -> str:
    with open(os.path.join(folder, filename), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:12]
