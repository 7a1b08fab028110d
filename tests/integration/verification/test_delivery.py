"""Delivery through a signed Alibaba Cloud request to a local fake that
checks the signature: accepted messages arrive, a refusing provider is
retried, the user's quota is refunded and ``code_delivery_failed`` leaves
through the outbox."""

import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from devtools.fake_aliyun import FakeAliyunSms
from services.common.plumbing import base
from services.common.plumbing.db import Database, Store
from services.common.plumbing.handlers import event_handler
from services.common.plumbing.testing import wait_until

from .conftest import random_phone

failed_events = []


class DeliveryWatcher(base.ServiceBase):
    name = "delivery_watcher"
    db = Database(Store)

    @event_handler("verification", "code_delivery_failed")
    def handle_code_delivery_failed(self, payload, envelope):
        failed_events.append(payload)


@pytest.fixture
def aliyun():
    fake = FakeAliyunSms(secrets={"test-key-id": "test-key-secret"}).start()
    yield fake
    fake.stop()


def aliyun_settings(fake, secret="test-key-secret"):
    return {
        "SMS_PROVIDER": "aliyun",
        "ALIYUN_SMS_ENDPOINT": fake.url,
        "ALIYUN_ACCESS_KEY_ID": "test-key-id",
        "ALIYUN_ACCESS_KEY_SECRET": secret,
        "ALIYUN_SIGN_NAME": "学生账号",
        "ALIYUN_TEMPLATE_CODE": "SMS_0001",
        "DELIVERY_MAX_ATTEMPTS": 3,
        "DELIVERY_RETRY_BASE_SECONDS": 0.05,
    }


def test_signed_request_reaches_the_provider_with_the_code(
    start_verification, aliyun, sql
):
    config, _ = start_verification(**aliyun_settings(aliyun))
    phone = random_phone()
    with ServiceRpcProxy("verification", config) as proxy:
        proxy.issue_code(
            {"channel": "sms", "destination": phone, "purpose": "register"}
        )
    requests_ = wait_until(lambda: aliyun.sent_to(phone[3:]), message="aliyun request")
    params, answer = requests_[0]
    assert answer == "OK"
    assert params["SignName"] == "学生账号" and params["TemplateCode"] == "SMS_0001"
    assert len(__import__("json").loads(params["TemplateParam"])["code"]) == 6
    wait_until(
        lambda: (
            sql("SELECT status FROM deliveries WHERE destination = %s", (phone,))[0][
                "status"
            ]
            == "sent"
        ),
        message="marked sent",
    )
    # The delivery, its attempt and its code are written together.
    (row,) = sql(
        "SELECT c.delivered_at, a.outcome, a.provider FROM deliveries d"
        " JOIN codes c ON c.id = d.code_id"
        " JOIN delivery_attempts a ON a.delivery_id = d.id"
        " WHERE d.destination = %s",
        (phone,),
    )
    assert row["delivered_at"] is not None
    assert (row["outcome"], row["provider"]) == ("sent", "aliyun_sms")


def test_refused_delivery_is_retried_refunded_and_announced(
    start_verification, container_factory, make_config, aliyun, sql
):
    container_factory(DeliveryWatcher, make_config("identity")).start()
    config, _ = start_verification(**aliyun_settings(aliyun))
    phone = random_phone()
    aliyun.refuse[phone[3:]] = "isv.BUSINESS_LIMIT_CONTROL"
    with ServiceRpcProxy("verification", config) as proxy:
        first = proxy.issue_code(
            {
                "channel": "sms",
                "destination": phone,
                "purpose": "register",
                "account_id": "acc-1",
            }
        )
        assert first["remaining_today"] == 4
        event = wait_until(
            lambda: next(
                (
                    e
                    for e in failed_events
                    if e["account_id"] == "acc-1"
                    and e["destination_masked"] == phone[3:6] + "****" + phone[-4:]
                ),
                None,
            ),
            timeout=20,
            message="code_delivery_failed",
        )
        assert (
            event["attempts"] == 3
            and event["reason"] == "aliyun isv.BUSINESS_LIMIT_CONTROL"
        )
        assert [c for _, c in aliyun.sent_to(phone[3:])] == [
            "isv.BUSINESS_LIMIT_CONTROL"
        ] * 3
        delivery = sql(
            "SELECT id, status, sealed_message FROM deliveries WHERE destination = %s",
            (phone,),
        )[0]
        assert delivery["status"] == "failed" and delivery["sealed_message"] is None
        attempts = sql(
            "SELECT outcome FROM delivery_attempts WHERE delivery_id = %s",
            (delivery["id"],),
        )
        assert [a["outcome"] for a in attempts] == ["refused"] * 3
        # Not charged: no cooldown and the full day's quota again.
        again = proxy.issue_code(
            {"channel": "sms", "destination": phone, "purpose": "register"}
        )
        assert again["remaining_today"] == 4


def test_a_wrongly_signed_request_is_refused_by_the_provider(
    start_verification, aliyun, sql
):
    config, _ = start_verification(**aliyun_settings(aliyun, secret="wrong-secret"))
    phone = random_phone()
    with ServiceRpcProxy("verification", config) as proxy:
        proxy.issue_code(
            {"channel": "sms", "destination": phone, "purpose": "register"}
        )
    wait_until(
        lambda: len(aliyun.sent_to(phone[3:])) == 3, timeout=20, message="3 tries"
    )
    assert {c for _, c in aliyun.sent_to(phone[3:])} == {"SignatureDoesNotMatch"}


def test_with_receipts_the_send_names_its_delivery_and_waits_submitted(
    start_verification, aliyun, sql
):
    """ALIYUN_RECEIPTS: OutId carries the delivery (signed with the rest of
    the request), and the delivery waits for its SmsReport as submitted."""
    config, _ = start_verification(**aliyun_settings(aliyun), ALIYUN_RECEIPTS=True)
    phone = random_phone()
    with ServiceRpcProxy("verification", config) as proxy:
        answer = proxy.issue_code(
            {"channel": "sms", "destination": phone, "purpose": "register"}
        )
        requests_ = wait_until(lambda: aliyun.sent_to(phone[3:]), message="sent")
        (delivery,) = sql("SELECT id FROM deliveries WHERE destination = %s", (phone,))
        assert requests_[0][0]["OutId"] == str(delivery["id"])
        assert requests_[0][1] == "OK"  # the fake checked the signature with it
        state = wait_until(
            lambda: (
                proxy.code_delivery({"code_id": answer["code_id"]})["state"]
                == "submitted"
            ),
            message="submitted",
        )
        assert state
        moved = proxy.record_aliyun_receipts(
            {
                "reports": [
                    {
                        "out_id": str(delivery["id"]),
                        "success": True,
                        "err_code": "DELIVERED",
                    }
                ]
            }
        )
        assert moved == {"recorded": 1}
        assert proxy.code_delivery({"code_id": answer["code_id"]})["state"] == (
            "delivered"
        )
