"""The cluster's broker set-up asks again when the management API answers
5xx (a just-formed cluster: "Timed out while waiting for the vhost to
initialise"), and gives up with the error after its attempts."""

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests

from devtools.cluster import _put


def serve(statuses):
    """A local server answering PUTs with ``statuses`` in turn; returns
    (url, the statuses it sent)."""
    sent = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self):  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = statuses[min(len(sent), len(statuses) - 1)]
            sent.append(status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/api/vhosts/x", sent, server


def test_a_vhost_not_yet_initialised_is_asked_for_again():
    url, sent, server = serve([500, 500, 201])
    try:
        assert _put(url, pause=0.01, json={}, timeout=5).status_code == 201
    finally:
        server.shutdown()
    assert sent == [500, 500, 201]


def test_a_refusal_is_not_asked_again_and_a_lasting_error_is_raised():
    url, sent, server = serve([400])
    try:
        with pytest.raises(requests.HTTPError):
            _put(url, pause=0.01, json={}, timeout=5)
        assert sent == [400]
        url2, sent2, server2 = serve([503])
        try:
            with pytest.raises(requests.HTTPError):
                _put(url2, attempts=3, pause=0.01, json={}, timeout=5)
            assert sent2 == [503, 503, 503]
        finally:
            server2.shutdown()
    finally:
        server.shutdown()
