"""Which address a request comes from, behind zero, one or two trusted
proxies: entries left of the trusted ones are the client's own words."""

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway.http import client_ip, forwarded_client


@pytest.mark.parametrize(
    "header,hops,expected",
    [
        # One proxy appended the address it saw: the last entry.
        ("203.0.113.7", 1, "203.0.113.7"),
        ("10.9.9.9, 203.0.113.7", 1, "203.0.113.7"),
        # Spoofed entries on the left never win, however many.
        ("1.1.1.1, 2.2.2.2, 203.0.113.7", 1, "203.0.113.7"),
        # Two proxies: the first appended the client, the second the first.
        ("1.1.1.1, 203.0.113.7, 10.0.0.2", 2, "203.0.113.7"),
        ("203.0.113.7,10.0.0.2", 2, "203.0.113.7"),
        # IPv6 and surrounding blanks.
        (" 2001:db8::1 ", 1, "2001:db8::1"),
        # Fewer entries than trusted hops: not vouched for.
        ("203.0.113.7", 2, None),
        ("", 1, None),
        (None, 1, None),
        (" , ,", 1, None),
        # Garbage where the proxy's entry should be.
        ("1.1.1.1, not-an-ip", 1, None),
        ("1.1.1.1, 999.1.1.1", 1, None),
        ("1.1.1.1, 203.0.113.7<script>", 1, None),
        ("203.0.113.7", 0, None),
    ],
)
def test_forwarded_client(header, hops, expected):
    assert forwarded_client(header, hops) == expected


def request_from(peer, forwarded=None):
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    environ = EnvironBuilder(headers=headers).get_environ()
    environ["REMOTE_ADDR"] = peer
    return Request(environ)


def test_header_ignored_unless_the_proxy_is_trusted():
    request = request_from("198.51.100.1", "203.0.113.7")
    assert client_ip(request, {"GATEWAY_TRUST_FORWARDED_FOR": False}) == "198.51.100.1"
    assert client_ip(request, {"GATEWAY_TRUST_FORWARDED_FOR": "false"}) == (
        "198.51.100.1"
    )


def test_trusted_proxy_with_spoofed_left_entry_gives_the_appended_address():
    request = request_from("10.0.0.2", "6.6.6.6, 203.0.113.7")
    config = {"GATEWAY_TRUST_FORWARDED_FOR": True, "GATEWAY_TRUSTED_PROXY_HOPS": 1}
    assert client_ip(request, config) == "203.0.113.7"
    config["GATEWAY_TRUSTED_PROXY_HOPS"] = "2"
    assert client_ip(request, config) == "6.6.6.6"


def test_garbage_header_falls_back_to_the_peer():
    request = request_from("10.0.0.2", "garbage")
    config = {"GATEWAY_TRUST_FORWARDED_FOR": "true"}
    assert client_ip(request, config) == "10.0.0.2"
