"""Development capture of outgoing SMS and email: nothing leaves the machine.

* SMS: the HTTP SMS adapter posts ``{"to", "body"}`` (or any JSON with those
  fields) to ``POST /api/sms``.
* Email: a real SMTP server (aiosmtpd) on ``--smtp-port`` takes any message.
* Captchas (development only): ``POST /api/captcha`` ``{"to": captcha_id,
  "body": text}`` when the verification service has ``CAPTCHA_CAPTURE_URL``.
* All are read back at ``GET /api/messages?to=<phone or email>`` →
  ``[{channel, to, body, received_at}]``, newest first.

Never part of a production deployment.

    python -m devtools.capture --http-port 8025 --smtp-port 1025
"""

import argparse
import email
import email.policy
import json
import signal
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller

__all__ = ["CaptureServer", "MessageLog"]


def _normalise_phone(value):
    digits = "".join(ch for ch in value if ch.isdigit() or ch == "+")
    if digits.startswith("+86"):
        return digits[3:]
    return digits


class MessageLog:
    """Thread-safe list of captured messages."""

    def __init__(self, limit=10000):
        self._lock = threading.Lock()
        self._items = []
        self.limit = limit

    def add(self, channel, to, body, **extra):
        item = {
            "channel": channel,
            "to": to,
            "body": body,
            "received_at": datetime.now(timezone.utc).isoformat(),
            **extra,
        }
        with self._lock:
            self._items.append(item)
            del self._items[: -self.limit]
        return item

    def find(self, to=None):
        with self._lock:
            items = list(reversed(self._items))
        if not to:
            return items
        wanted = to.strip().lower()
        phone = _normalise_phone(wanted)
        return [
            m
            for m in items
            if m["to"].lower() == wanted
            or (m["channel"] == "sms" and _normalise_phone(m["to"]) == phone)
        ]

    def clear(self):
        with self._lock:
            self._items.clear()


class _SmtpHandler:
    def __init__(self, messages):
        self.messages = messages

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        part = parsed.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        for rcpt in envelope.rcpt_tos:
            self.messages.add(
                "email",
                rcpt,
                body,
                subject=str(parsed.get("Subject", "")),
                sender=envelope.mail_from,
            )
        return "250 Message accepted for delivery"


def _http_handler(messages):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: senders reuse connections
        # The headers and the body go out in two writes; with Nagle on, the
        # second waited for the sender's delayed ACK: 40 ms per message, which
        # held verification's delivery queue to ~180 messages/s.
        disable_nagle_algorithm = True

        def log_message(self, *args):  # keep test output quiet
            pass

        def _send(self, status, payload):
            raw = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path != "/api/messages":
                return self._send(404, {"error": "not_found"})
            to = parse_qs(url.query).get("to", [None])[0]
            return self._send(200, messages.find(to))

        def do_DELETE(self):
            if urlsplit(self.path).path != "/api/messages":
                return self._send(404, {"error": "not_found"})
            messages.clear()
            return self._send(200, {"cleared": True})

        def do_POST(self):
            # /api/captcha: development builds post each captcha's text here
            # (CAPTCHA_CAPTURE_URL), so tests and developers can answer it.
            channel = {"/api/sms": "sms", "/api/captcha": "captcha"}.get(
                urlsplit(self.path).path
            )
            if channel is None:
                return self._send(404, {"error": "not_found"})
            length = int(self.headers.get("Content-Length") or 0)
            try:
                data = json.loads(self.rfile.read(length) or b"{}")
                to, body = str(data["to"]), str(data["body"])
            except (ValueError, KeyError, TypeError):
                return self._send(400, {"error": "need JSON with to and body"})
            item = messages.add(channel, to, body)
            return self._send(
                200, {"accepted": True, "received_at": item["received_at"]}
            )

    return Handler


class CaptureServer:
    """The HTTP API and the SMTP server, each in its own thread."""

    def __init__(self, host="127.0.0.1", http_port=8025, smtp_port=1025):
        self.messages = MessageLog()
        self.http = ThreadingHTTPServer((host, http_port), _http_handler(self.messages))
        self.smtp = Controller(
            _SmtpHandler(self.messages), hostname=host, port=smtp_port
        )
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def http_port(self):
        return self.http.server_address[1]

    def start(self):
        self.smtp.start()
        self._thread.start()
        return self

    def stop(self):
        self.http.shutdown()
        self.http.server_close()
        self.smtp.stop()


def main():
    parser = argparse.ArgumentParser(description="SMS/email capture for development")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=8025)
    parser.add_argument("--smtp-port", type=int, default=1025)
    args = parser.parse_args()
    server = CaptureServer(args.host, args.http_port, args.smtp_port).start()
    print(
        f"[capture] http://{args.host}:{server.http_port}/api/messages "
        f"smtp://{args.host}:{args.smtp_port}",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
