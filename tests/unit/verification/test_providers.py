"""Delivery adapters without the network: sealing, the HTTP gateway's body
template, and Alibaba Cloud's request signing rules."""

from datetime import datetime, timezone

import pytest
from cryptography.exceptions import InvalidTag

from devtools.fake_aliyun import expected_signature
from services.common.plumbing.crypto import Sealer
from services.verification.providers import AliyunSms, HttpSmsGateway, aliyun_signature


def test_sealed_message_round_trips_and_hides_the_code():
    sealer = Sealer(b"s" * 32, b"delivery")
    sealed = sealer.seal(
        {"to": "+8613812345678", "code": "123456", "body": "验证码：123456"}
    )
    assert b"123456" not in sealed
    assert sealer.open(sealed)["code"] == "123456"
    with pytest.raises(InvalidTag):
        Sealer(b"t" * 32, b"delivery").open(sealed)
    with pytest.raises(InvalidTag):  # sealed for delivery, not for anything else
        Sealer(b"s" * 32, b"id_number").open(sealed)


def test_http_gateway_renders_its_body_template_in_nested_values():
    gateway = HttpSmsGateway(
        "http://x",
        {"msisdn": "$to", "text": {"content": "$body"}, "tags": ["otp", "$code"]},
    )
    body = gateway._render(
        gateway.body_template, {"to": "+86138", "body": "hi $x", "code": "1"}
    )
    assert body == {
        "msisdn": "+86138",
        "text": {"content": "hi $x"},
        "tags": ["otp", "1"],
    }


def test_aliyun_request_is_signed_per_the_published_rules():
    sms = AliyunSms(
        "http://127.0.0.1:1/", "testid", "testsecret", "阿里云短信测试", "SMS_154950909"
    )
    params = sms.request_params(
        "+8613812345678",
        "123456",
        now=datetime(2026, 11, 24, 1, 2, 3, tzinfo=timezone.utc),
        nonce="nonce-1",
    )
    assert params["PhoneNumbers"] == "13812345678"
    assert params["Timestamp"] == "2026-11-24T01:02:03Z"
    assert params["TemplateParam"] == '{"code":"123456"}'
    signature = params.pop("Signature")
    assert signature == expected_signature(params, "testsecret")
    assert (
        aliyun_signature({**params, "PhoneNumbers": "13812345679"}, "testsecret")
        != signature
    )


def test_percent_encoding_keeps_unreserved_and_encodes_space_and_star():
    a = aliyun_signature({"A": "x y*~"}, "s")
    b = expected_signature({"A": "x y*~"}, "s")
    assert a == b


# Alibaba Cloud's own worked example of signature version 1.0 (the ECS API
# "request signatures" page, DescribeRegions with AccessKeyId "testid" and
# secret "testsecret"): a fixed vector from the provider, not a second
# implementation by our hands. The Chinese page writes the parameter
# "TimeStamp", the English page "Timestamp"; each has its signature.
ALIYUN_WORKED_EXAMPLE = {
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "Format": "XML",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "SignatureVersion": "1.0",
    "Version": "2014-05-26",
}


@pytest.mark.parametrize(
    "timestamp_key,signature",
    [
        ("TimeStamp", "CT9X0VtwR86fNWSnsc6v8YGOjuE="),
        ("Timestamp", "OLeaidS1JvxuMvnyHOwuJ+uX5qY="),
    ],
)
def test_aliyun_signature_matches_the_providers_worked_example(
    timestamp_key, signature
):
    from services.verification.providers import aliyun_signature

    params = {**ALIYUN_WORKED_EXAMPLE, timestamp_key: "2016-02-23T12:46:24Z"}
    assert aliyun_signature(params, "testsecret") == signature
