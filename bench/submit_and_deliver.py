"""Benchmark: how fast the form stores requests and the outbox delivers them, and memory used.

Bounded and short (a few seconds): N form posts through the WSGI app into a real SQLite file
(WAL, synchronous=FULL), then delivery of all of them to a local aiosmtpd server.
Run: .venv/bin/python bench/submit_and_deliver.py [N]
"""

import re
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app import create_app  # noqa: E402
from rsct import sender  # noqa: E402


class Count:
    messages = 0

    async def handle_DATA(self, server, session, envelope):
        Count.messages += 1
        return "250 OK"


def main(count: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Controller(Count(), hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            app = create_app(
                {
                    "CONFIG_NAME": "testing",
                    "INSTANCE_PATH": folder,
                    "MAIL_SERVER": "127.0.0.1",
                    "MAIL_PORT": port,
                    "MAIL_SUPPRESS_SEND": False,
                    "RATE_LIMIT_COUNT": 10**6,
                }
            )
            app.extensions["mail"].suppress = False
            client = app.test_client()
            token = re.search(r'name="form_token" type="hidden" value="([^"]+)"', client.get("/contact").text)[1]
            timings = []
            for i in range(count):
                started = time.perf_counter()
                response = client.post(
                    "/contact",
                    headers={"HX-Request": "true"},
                    data={
                        "form_token": token,
                        "name": f"Bench {i}",
                        "contact_method": "call",
                        "phone": "203 555 0147",
                        "leave_message": "no",
                        "message": "benchmark " * 20,
                    },
                )
                timings.append(time.perf_counter() - started)
                assert response.status_code == 200, response.status_code
            started = time.perf_counter()
            with app.app_context():
                delivered = sender.deliver_due().delivered
            delivery = time.perf_counter() - started
    finally:
        smtp.stop()
    timings.sort()
    print(f"form posts stored: {count}")
    print(
        f"  latency p50 {statistics.median(timings) * 1000:.1f} ms, "
        f"p95 {timings[int(count * 0.95) - 1] * 1000:.1f} ms, max {timings[-1] * 1000:.1f} ms"
    )
    print(
        f"delivered to SMTP: {len(delivered)} (server got {Count.messages}) in {delivery:.2f} s "
        f"= {len(delivered) / delivery:.0f} messages/s"
    )
    print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
