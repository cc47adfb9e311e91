"""The application factory: wiring only. `flask --app app run` and `gunicorn "app:create_app()"`."""

import os

from flask import Flask
from flask_mail import Mail

import config
from rsct import assets, cli, contact, errors, health, i18n, instance, logs, pages, security


def create_app(test_config: dict | None = None) -> Flask:
    """Create the site from FLASK_* settings (and, in tests, overrides)."""
    folder = os.environ.get("FLASK_INSTANCE_PATH")
    app = Flask(__name__, instance_path=os.path.abspath(folder) if folder else None)
    app.config.update(config.load(os.environ, app.instance_path, test_config))
    app.instance_path = app.config["INSTANCE_PATH"]
    logs.init_app(app)

    # Nothing is written here: read-only commands create nothing. The web app prepares the instance
    # folder, secrets and database before its first request; the commands that write do it themselves.
    instance.prepare_on_first_request(app)
    pages.init_app(app)  # inside ProxyFix (security), which must see the request first
    security.init_app(app)
    assets.init_app(app)
    i18n.init_app(app)
    Mail(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(errors.bp)
    app.register_blueprint(contact.bp)
    app.register_blueprint(health.bp)
    app.cli.add_command(cli.outbox_cli)
    app.cli.add_command(cli.inquiry_cli)
    app.cli.add_command(cli.alert_cli)
    app.cli.add_command(cli.backup)
    app.cli.add_command(cli.security_headers)
    app.cli.add_command(cli.smime_cli)
    app.cli.add_command(cli.setup)

    if app.config["CONFIG_NAME"] == "production" and not app.config["PROXY_COUNT"]:
        app.logger.warning("FLASK_PROXY_COUNT is 0: client addresses are the proxy's; set it to 1 behind nginx.")
    return app
