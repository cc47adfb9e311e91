"""Security headers, and which proxies and host names the site trusts."""

from flask import Flask, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix

HSTS = "max-age=63072000; includeSubDomains"
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "encrypted-media",
        "fullscreen",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "picture-in-picture",
        "publickey-credentials-get",
        "screen-wake-lock",
        "serial",
        "usb",
        "xr-spatial-tracking",
        "browsing-topics",
    )
)


def init_app(app: Flask) -> None:
    """Install the header hook, proxy handling and host checks."""
    if app.config["PROXY_COUNT"]:
        count = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)
    if app.config["TRUSTED_HOSTS"]:
        app.config["TRUSTED_HOSTS"] = list(app.config["TRUSTED_HOSTS"])
    app.after_request(add_headers)


def content_security_policy(htmx_url: str) -> str:
    """The strict policy: only this site's own files, plus the exact htmx file."""
    script = "'self'" if htmx_url.startswith("/") else f"'self' {htmx_url}"
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {script}",
            "style-src 'self'",
            "img-src 'self'",
            "connect-src 'self'",
            "manifest-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        )
    )


def header_values(config, secure: bool) -> dict:
    """The security headers this site sends; nginx's snippet for its own responses is made from this too."""
    headers = {
        "Content-Security-Policy": content_security_policy(config["HTMX_URL"]),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": PERMISSIONS_POLICY,
    }
    if config["CONFIG_NAME"] == "production" and secure:
        headers["Strict-Transport-Security"] = HSTS
    return headers


def nginx_snippet(config) -> str:
    """The same headers as nginx directives, for the responses nginx makes itself (static files, its errors)."""
    lines = ["# Made by `flask --app app security-headers`: the headers the app sends, for nginx's own responses."]
    for name, value in header_values(config, secure=True).items():
        lines.append(f'add_header {name} "{value}" always;')
    return "\n".join(lines) + "\n"


def add_headers(response):
    """Send the same security headers on every response, error pages included."""
    response.headers.update(header_values(current_app.config, request.is_secure))
    if request.endpoint == "static" and request.args.get("v"):
        # The URL changes whenever the file does, so browsers may keep it for a year.
        response.cache_control.max_age = 31536000
        response.cache_control.public = True
        response.cache_control.immutable = True
    return response
