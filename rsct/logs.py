"""Logging that never quotes a visitor: tracebacks are kept, exception messages are not."""

import logging
import traceback

from flask import Flask


class ExceptionWithoutMessage(logging.Filter):
    """Keep tracebacks in logs but drop exception messages, which could quote what a visitor typed."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            kind, error, trace = record.exc_info
            frames = "".join(traceback.format_tb(trace))
            record.msg = f"{record.getMessage()}\nTraceback (message withheld):\n{frames}{kind.__name__}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def init_app(app: Flask) -> None:
    """Log at INFO, and apply the filter to the app's logger and the rsct.* loggers (outbox, alerts)."""
    if not logging.getLogger().handlers:  # gunicorn and pytest bring their own
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    app.logger.setLevel(logging.INFO)
    logging.getLogger("rsct").setLevel(logging.INFO)
    for logger in (app.logger, logging.getLogger("rsct")):
        if not any(isinstance(f, ExceptionWithoutMessage) for f in logger.filters):
            logger.addFilter(ExceptionWithoutMessage())
