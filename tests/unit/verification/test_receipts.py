"""Delivery receipts: what each provider's report means, which state a
client is shown, and the signatures that keep receipts and code ids ours."""

import pytest

from services.verification import receipts
from services.verification.providers import AliyunSms, KannelSms

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("dlr_type", "report", "state"),
    [
        (1, "id:7 sub:001 dlvrd:001 stat:DELIVRD err:000 text:", "delivered"),
        (2, "id:7 sub:001 dlvrd:000 stat:UNDELIV err:001 text:", "failed"),
        (2, "id:7 sub:001 dlvrd:000 stat:EXPIRED err:001 text:", "expired"),
        (2, "id:7 stat:REJECTD", "failed"),
        (2, "", "failed"),  # no text: not delivered is failed
        (16, "NACK/0x00000045/Submit failed", "failed"),
        (8, "ACK/", None),  # taken by the SMSC: nothing final yet
        (4, "", None),
        # "delivered" wins over a stray stat in the text
        (1, "stat:EXPIRED", "delivered"),
        # a report claiming success in its text but not in its type is not
        (2, "stat:DELIVRD", "failed"),
    ],
)
def test_kannel_reports_map_to_states(dlr_type, report, state):
    assert receipts.kannel_receipt_state(dlr_type, report) == state


# Alibaba Cloud SmsReport items as their documentation shows them.
ALIYUN_DELIVERED = {
    "phone_number": "1381111****",
    "send_time": "2017-01-01 11:12:13",
    "report_time": "2017-02-02 22:23:24",
    "success": True,
    "err_code": "DELIVERED",
    "err_msg": "用户接收成功",
    "sms_size": "1",
    "biz_id": "12345",
    "out_id": "67890",
}


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        ({}, "delivered"),
        ({"success": False, "err_code": "MK:0001"}, "failed"),
        ({"success": False, "err_code": "IB:0008"}, "expired"),
        ({"success": False, "err_code": "EXPIRED"}, "expired"),
        ({"success": False, "err_code": ""}, "failed"),
    ],
)
def test_aliyun_reports_map_to_states(changes, state):
    assert receipts.aliyun_receipt_state({**ALIYUN_DELIVERED, **changes}) == state


@pytest.mark.parametrize(
    ("status", "receipt_state", "shown"),
    [
        ("pending", None, "queued"),
        ("pending", "delivered", "delivered"),  # the receipt overtook the answer
        ("sent", None, "sent"),
        ("sent", "submitted", "submitted"),
        ("sent", "expired", "expired"),
        ("failed", None, "failed"),
    ],
)
def test_client_state(status, receipt_state, shown):
    assert receipts.client_state(status, receipt_state) == shown


def test_receipt_signature_names_one_delivery_under_one_key():
    signature = receipts.receipt_signature(KEY, 42)
    assert receipts.receipt_signature_valid(KEY, 42, signature)
    assert not receipts.receipt_signature_valid(KEY, 43, signature)
    assert not receipts.receipt_signature_valid(b"x" * 32, 42, signature)
    assert not receipts.receipt_signature_valid(KEY, 42, "")
    assert not receipts.receipt_signature_valid(KEY, 42, None)


def test_code_reference_round_trips_and_cannot_be_walked():
    reference = receipts.code_reference(KEY, 4711)
    assert receipts.code_id_of_reference(KEY, reference) == 4711
    number, tag = reference.split("-")
    assert receipts.code_id_of_reference(KEY, f"4712-{tag}") is None
    assert receipts.code_id_of_reference(b"x" * 32, reference) is None
    for junk in ("", "-", "abc-def", "4711", "4711-", "9" * 40 + "-" + tag):
        assert receipts.code_id_of_reference(KEY, junk) is None
    # Not a label shared with the receipts: a reference is no signature.
    assert tag not in receipts.receipt_signature(KEY, 4711)


def test_kannel_request_carries_its_receipt_url_with_kannels_placeholders():
    kannel = KannelSms("http://k/cgi-bin/sendsms", "u", "p", "http://gw/r?x=1")
    fields = kannel.request_fields(
        {"to": "+8613800000000", "body": "验证码"}, (9, "ab")
    )
    assert fields["dlr-url"] == "http://gw/r?x=1&delivery=9&sig=ab&type=%d&report=%A"
    assert fields["dlr-mask"] == "27"  # every report but "buffered"
    assert fields["coding"] == "2" and fields["charset"] == "UTF-8"
    assert "dlr-url" not in kannel.request_fields({"to": "x", "body": "y"})


def test_aliyun_send_names_the_delivery_in_out_id():
    aliyun = AliyunSms("http://a/", "id", "secret", "签名", "SMS_1", receipts=True)
    params = aliyun.request_params("+8613800000000", "123456", out_id=42)
    assert params["OutId"] == "42" and params["PhoneNumbers"] == "13800000000"
    assert "OutId" not in aliyun.request_params("+8613800000000", "123456")
