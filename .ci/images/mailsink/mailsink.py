"""SMTP on :1025, a Mailpit-shaped JSON listing of what arrived on :8025."""

import email
import email.policy
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

MESSAGES: list[dict[str, object]] = []
LOCK = threading.Lock()


class Sink:
    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with LOCK:
            MESSAGES.append(
                {
                    "ID": uuid.uuid4().hex,
                    "From": {"Address": envelope.mail_from},
                    "To": [{"Address": address} for address in envelope.rcpt_tos],
                    "Subject": str(parsed.get("Subject", "")),
                }
            )
        return "250 OK"


class Api(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/livez":
            body = b"ok"
        elif self.path.startswith("/api/v1/messages"):
            with LOCK:
                listing = list(reversed(MESSAGES))  # newest first, as Mailpit lists them
            body = json.dumps({"total": len(listing), "messages_count": len(listing), "messages": listing}).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - quiet: healthchecks poll every few seconds
        pass


if __name__ == "__main__":
    # Inside its container: other containers reach it on the compose network.
    Controller(Sink(), hostname="0.0.0.0", port=1025).start()  # noqa: S104
    ThreadingHTTPServer(("0.0.0.0", 8025), Api).serve_forever()  # noqa: S104
