"""Issuing and checking codes through real RabbitMQ and PostgreSQL, with real
delivery to the capture server (HTTP for SMS, SMTP for email)."""

import collections
import uuid
from datetime import datetime, timezone

import eventlet
import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import replace_dependencies

from services.common.contract.errors import Forbidden, RuleViolation, Throttled
from services.common.plumbing.clock import FakeClock
from services.common.plumbing.testing import wait_until
from services.verification.service import VerificationService

from .conftest import code_in, random_phone


def issue(proxy, destination, purpose="register", channel="sms", **extra):
    return proxy.issue_code(
        {"channel": channel, "destination": destination, "purpose": purpose, **extra}
    )


def test_thousand_concurrent_sends_to_one_phone_over_two_instances_send_exactly_five(
    start_verification, capture, sql
):
    config, containers = start_verification(instances=2, limits={"resend_cooldown": 0})
    served = count_served(containers)
    phone = random_phone()
    outcomes = collections.Counter()

    def client(batch):
        with ServiceRpcProxy("verification", config) as proxy:
            replies = [
                proxy.issue_code.call_async(
                    {
                        "channel": "sms",
                        "destination": phone,
                        "purpose": "register",
                        "client_ip": f"10.9.{batch}.{i}",
                    }
                )
                for i in range(20)
            ]
            for reply in replies:
                try:
                    reply.result()
                    outcomes["sent"] += 1
                except Throttled as refusal:
                    outcomes[refusal.code] += 1

    pool = eventlet.GreenPool(50)
    for batch in range(50):
        pool.spawn(client, batch)
    pool.waitall()
    assert outcomes == {"sent": 5, "daily_limit_reached": 995}
    # Both instances took a real share of the 1,000: the race crossed processes'
    # worth of workers, not one instance's queue.
    assert sorted(served) == [0, 1] and min(served.values()) >= 100, served
    assert (
        sql("SELECT count(*) AS n FROM codes WHERE destination = %s", (phone,))[0]["n"]
        == 5
    )
    wait_until(
        lambda: len(capture.messages(phone)) == 5,
        timeout=20,
        message="five SMS delivered",
    )
    delivered = sql("SELECT status FROM deliveries WHERE destination = %s", (phone,))
    assert [d["status"] for d in delivered] == ["sent"] * 5
    assert (
        sql(
            "SELECT sealed_message FROM deliveries WHERE destination = %s AND "
            "sealed_message IS NOT NULL",
            (phone,),
        )
        == []
    )


def count_served(containers):
    """``Counter`` of workers each container spawned (index -> count)."""
    served = collections.Counter()
    for index, container in enumerate(containers):
        spawn = container.spawn_worker

        def counting(*args, _spawn=spawn, _index=index, **kwargs):
            served[_index] += 1
            return _spawn(*args, **kwargs)

        container.spawn_worker = counting
    return served


RACE_ROUNDS = 5
RACERS = 16


def race_one_code(config, capture):
    """A fresh code, checked by ``RACERS`` callers released at once."""
    phone = random_phone()
    with ServiceRpcProxy("verification", config) as proxy:
        issue(proxy, phone)
    code = code_in(wait_until(lambda: capture.messages(phone), message="sms")[0])
    start = eventlet.event.Event()
    results = []

    def check():
        with ServiceRpcProxy("verification", config) as proxy:
            start.wait()  # every racer connected, then all at once
            try:
                results.append(
                    proxy.check_code(
                        {"destination": phone, "purpose": "register", "code": code}
                    )["verified"]
                )
            except RuleViolation as refusal:
                results.append(refusal.code)

    threads = [eventlet.spawn(check) for _ in range(RACERS)]
    eventlet.sleep(0.3)
    start.send()
    for thread in threads:
        thread.wait()
    return results


def test_many_concurrent_checks_of_one_code_over_two_instances_succeed_once(
    start_verification, capture
):
    # Guesses are counted before the code is looked at; let all racers count.
    config, containers = start_verification(
        instances=2, limits={"resend_cooldown": 0, "max_wrong_guesses": 1000}
    )
    served = count_served(containers)
    for _ in range(RACE_ROUNDS):
        results = race_one_code(config, capture)
        assert results.count(True) == 1, results
        assert results.count("code_used") == RACERS - 1, results
    # The checks really ran on both instances.
    assert sorted(served) == [0, 1] and min(served.values()) >= RACE_ROUNDS, served


def test_email_code_travels_over_smtp_and_verifies(start_verification, capture):
    config, _ = start_verification()
    email = f"stu-{uuid.uuid4().hex[:8]}@school.edu.cn"
    with ServiceRpcProxy("verification", config) as proxy:
        answer = issue(proxy, email, purpose="reset_password", channel="email")
        assert answer["destination_masked"].endswith("@school.edu.cn")
        message = wait_until(lambda: capture.messages(email), message="email")[0]
        assert message["channel"] == "email"
        assert "重置密码" in message["subject"]
        code = code_in(message)
        with pytest.raises(RuleViolation) as wrong_purpose:
            proxy.check_code(
                {"destination": email, "purpose": "register", "code": code}
            )
        assert wrong_purpose.value.code == "code_invalid"
        assert (
            proxy.check_code(
                {"destination": email, "purpose": "reset_password", "code": code}
            )["verified"]
            is True
        )


def test_an_older_unexpired_code_still_works_after_a_resend(
    start_verification, capture
):
    config, _ = start_verification(limits={"resend_cooldown": 0})
    phone = random_phone()
    with ServiceRpcProxy("verification", config) as proxy:
        issue(proxy, phone)
        first = code_in(wait_until(lambda: capture.messages(phone), message="first")[0])
        issue(proxy, phone)
        wait_until(lambda: len(capture.messages(phone)) == 2, message="second")
        assert proxy.check_code(
            {"destination": "13" + phone[5:], "purpose": "register", "code": first}
        )["verified"]


def test_resend_within_cooldown_is_refused_with_seconds_to_wait(start_verification):
    config, _ = start_verification()
    phone = random_phone()
    with ServiceRpcProxy("verification", config) as proxy:
        answer = issue(proxy, phone)
        assert answer["remaining_today"] == 4 and answer["resend_after"] == 60
        with pytest.raises(Throttled) as caught:
            issue(proxy, phone)
    assert caught.value.code == "resend_too_soon"
    assert 55 <= caught.value.extra["retry_after"] <= 60


def test_five_wrong_guesses_kill_every_live_code(start_verification, capture, sql):
    config, _ = start_verification(limits={"resend_cooldown": 0})
    phone = random_phone()
    with ServiceRpcProxy("verification", config) as proxy:
        issue(proxy, phone, purpose="change_phone")
        issue(proxy, phone, purpose="change_phone")
        wait_until(lambda: len(capture.messages(phone)) == 2, message="two codes")
        good = code_in(capture.messages(phone)[0])
        wrong = "000000" if good != "000000" else "111111"
        codes = []
        for _ in range(5):
            try:
                proxy.check_code(
                    {"destination": phone, "purpose": "change_phone", "code": wrong}
                )
            except (RuleViolation, Throttled) as refusal:
                codes.append(refusal.code)
        assert codes == ["code_invalid"] * 4 + ["too_many_attempts"]
        # Every live code is dead, the older one too, not only the newest.
        rows = sql(
            "SELECT dead_at, used_at FROM codes WHERE destination = %s"
            " AND purpose = 'change_phone'",
            ("+86" + phone[-11:],),
        )
        assert len(rows) == 2
        assert all(r["dead_at"] is not None and r["used_at"] is None for r in rows)
        for message in capture.messages(phone):  # newest, then the older one
            with pytest.raises(RuleViolation) as dead:
                proxy.check_code(
                    {
                        "destination": phone,
                        "purpose": "change_phone",
                        "code": code_in(message),
                    }
                )
            assert dead.value.code == "code_invalid"


def test_repeated_failures_from_one_ip_require_a_captcha(
    start_verification, monkeypatch
):
    from services.verification import domain

    monkeypatch.setattr(domain, "generate_captcha_text", lambda: "AB23")
    config, _ = start_verification(limits={"ip_failures_before_captcha": 2})
    ip = f"10.1.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    phone = random_phone()
    with ServiceRpcProxy("verification", config) as proxy:
        issue(proxy, phone, client_ip=ip)
        with pytest.raises(Throttled):
            issue(proxy, phone, client_ip=ip)
        issue(proxy, random_phone(), client_ip=ip)  # one refusal: no captcha yet
        with pytest.raises(Throttled):
            issue(proxy, phone, client_ip=ip)
        with pytest.raises(Forbidden) as required:
            issue(proxy, random_phone(), client_ip=ip)
        assert required.value.code == "captcha_required"
        captcha = proxy.issue_captcha()
        import base64

        assert base64.b64decode(captcha["image_png_base64"])[:8] == b"\x89PNG\r\n\x1a\n"
        with pytest.raises(RuleViolation) as wrong:
            issue(
                proxy,
                random_phone(),
                client_ip=ip,
                captcha_id=captcha["captcha_id"],
                captcha_answer="ZZZZ",
            )
        assert wrong.value.code == "captcha_invalid"
        with pytest.raises(RuleViolation):  # single use: the right answer is too late
            issue(
                proxy,
                random_phone(),
                client_ip=ip,
                captcha_id=captcha["captcha_id"],
                captcha_answer="AB23",
            )
        fresh = proxy.issue_captcha()
        assert (
            issue(
                proxy,
                random_phone(),
                client_ip=ip,
                captcha_id=fresh["captcha_id"],
                captcha_answer="ab23",
            )["remaining_today"]
            == 4
        )


def test_daily_quota_follows_the_beijing_calendar_with_a_frozen_clock(
    container_factory, verification_config
):
    config = verification_config({"resend_cooldown": 0})
    container = container_factory(VerificationService, config)
    clock_mock = replace_dependencies(container, "clock")
    # 23:59:50 in Beijing on 15 January, while the server clock says UTC.
    clock = FakeClock(datetime(2026, 1, 15, 15, 59, 50, tzinfo=timezone.utc))
    clock_mock.side_effect = clock
    container.start()
    phone = random_phone()
    with ServiceRpcProxy("verification", config) as proxy:
        for expected_remaining in (4, 3, 2, 1, 0):
            assert issue(proxy, phone)["remaining_today"] == expected_remaining
        clock.advance(seconds=9)  # 23:59:59
        with pytest.raises(Throttled) as refused:
            issue(proxy, phone)
        assert refused.value.code == "daily_limit_reached"
        assert refused.value.extra["resets_at"] == "2026-01-16T00:00:00+08:00"
        assert refused.value.extra["retry_after"] == 1
        clock.advance(seconds=1)  # 00:00:00 in Beijing: a new day
        assert issue(proxy, phone)["remaining_today"] == 4


def test_one_ip_gets_a_limited_number_of_codes_an_hour(start_verification):
    config, _ = start_verification(
        limits={"hourly_limit_per_ip": 3, "ip_failures_before_captcha": 100}
    )
    ip = f"10.2.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    with ServiceRpcProxy("verification", config) as proxy:
        for _ in range(3):
            issue(proxy, random_phone(), client_ip=ip)
        with pytest.raises(Throttled) as refused:
            issue(proxy, random_phone(), client_ip=ip)
        assert refused.value.code == "ip_limit_reached"
        assert refused.value.extra["retry_after"] > 0
        # Another network is not affected.
        issue(proxy, random_phone(), client_ip=ip + "1")
