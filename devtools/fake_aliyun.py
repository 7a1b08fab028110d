"""A local stand-in for Alibaba Cloud's SMS endpoint, for tests and local
runs: it checks each ``SendSms`` request's signature (recomputed here from
the published rules, independently of the adapter's code) and answers like
the real API.

    FakeAliyunSms(secrets={"testid": "testsecret"}, refuse={"13800000000": "isv.BUSINESS_LIMIT_CONTROL"})
"""

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

__all__ = ["FakeAliyunSms", "expected_signature"]


def expected_signature(params, secret):
    """Signature v1.0: sort, RFC 3986-encode, ``GET&%2F&<encoded query>``, HMAC-SHA1."""

    def encode(value):
        return quote(str(value), safe="-_.~")

    query = "&".join(encode(k) + "=" + encode(v) for k, v in sorted(params.items()))
    string_to_sign = "GET&" + encode("/") + "&" + encode(query)
    mac = hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


class FakeAliyunSms:
    def __init__(self, secrets, refuse=None, host="127.0.0.1", port=0):
        self.secrets = secrets
        self.refuse = dict(refuse or {})
        self.requests = []  # (params, answer code)
        self._lock = threading.Lock()
        self.http = ThreadingHTTPServer((host, port), self._handler())
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def url(self):
        host, port = self.http.server_address[:2]
        return f"http://{host}:{port}/"

    def _answer(self, params):
        signature = params.pop("Signature", "")
        secret = self.secrets.get(params.get("AccessKeyId"))
        if secret is None:
            return "InvalidAccessKeyId.NotFound"
        if not hmac.compare_digest(signature, expected_signature(params, secret)):
            return "SignatureDoesNotMatch"
        if params.get("Action") != "SendSms" or params.get("Version") != "2017-05-25":
            return "InvalidAction"
        return self.refuse.get(params.get("PhoneNumbers"), "OK")

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                params = dict(
                    parse_qsl(urlsplit(self.path).query, keep_blank_values=True)
                )
                code = fake._answer(dict(params))
                with fake._lock:
                    fake.requests.append((params, code))
                body = {"Code": code, "Message": code, "RequestId": "fake"}
                if code == "OK":
                    body["BizId"] = f"biz-{len(fake.requests)}"
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler

    def sent_to(self, phone):
        with self._lock:
            return [(p, c) for p, c in self.requests if p.get("PhoneNumbers") == phone]

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.http.shutdown()
        self.http.server_close()
