"""The anchor: a bare WSGI app answering recorded bytes and headers, under the same gunicorn settings.

RSCT_BENCH_ANSWERS names a JSON file {path: [status, [[name, value], ...], body (latin-1)]}; the site's
own answers, recorded by bench/run.py a moment before. Whatever this reaches is what gunicorn allows.
"""

import json
import os

with open(os.environ["RSCT_BENCH_ANSWERS"]) as handle:
    ANSWERS = {
        path: (status, [tuple(pair) for pair in headers], body.encode("latin-1"))
        for path, (status, headers, body) in json.load(handle).items()
    }


def app(environ, start_response):
    status, headers, body = ANSWERS.get(environ["PATH_INFO"], ANSWERS["/"])
    start_response(status, headers)
    return [body]
