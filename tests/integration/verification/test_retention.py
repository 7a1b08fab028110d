"""Retention with a frozen clock: the hourly purge deletes codes (with their
deliveries and attempts) and delivered notices ``RETENTION_DAYS`` after
they ended, and nothing younger."""

from datetime import timezone

from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_hook, replace_dependencies

from services.common.plumbing.clock import FakeClock, utc_now
from services.common.plumbing.testing import wait_until
from services.verification.service import VerificationService

from .conftest import random_phone


def test_codes_and_notices_are_purged_after_the_retention(
    container_factory, verification_config, sql
):
    config = verification_config({"resend_cooldown": 0}, RETENTION_DAYS=30)
    container = container_factory(VerificationService, config)
    clock = FakeClock(utc_now().astimezone(timezone.utc))
    replace_dependencies(container, "clock").side_effect = clock
    container.start()

    def purge():
        with entrypoint_hook(container, "purge_expired") as run:
            run()

    old_phone, young_phone = random_phone(), random_phone()
    with ServiceRpcProxy("verification", config) as proxy:
        proxy.issue_code(
            {"channel": "sms", "destination": old_phone, "purpose": "register"}
        )
        proxy.send_notice(
            {
                "channel": "sms",
                "destination": old_phone,
                "kind": "password_reset",
                "params": {},
                "notice_key": f"retention-{old_phone}",
            }
        )
        wait_until(
            lambda: (
                sql(
                    "SELECT count(*) AS n FROM deliveries WHERE destination = %s"
                    " AND status = 'sent'",
                    ("+86" + old_phone[-11:],),
                )[0]["n"]
                == 2
            ),
            message="both messages delivered",
        )
        clock.advance(days=29)
        proxy.issue_code(
            {"channel": "sms", "destination": young_phone, "purpose": "register"}
        )

    def left(phone):
        destination = "+86" + phone[-11:]
        codes = sql(
            "SELECT count(*) AS n FROM codes WHERE destination = %s", (destination,)
        )
        deliveries = sql(
            "SELECT count(*) AS n FROM deliveries WHERE destination = %s",
            (destination,),
        )
        attempts = sql(
            "SELECT count(*) AS n FROM delivery_attempts a JOIN deliveries d"
            " ON d.id = a.delivery_id WHERE d.destination = %s",
            (destination,),
        )
        return codes[0]["n"], deliveries[0]["n"], attempts[0]["n"]

    purge()  # day 29: the old code ended 29 days ago, inside the retention
    assert left(old_phone) == (1, 2, 2)
    clock.advance(days=2)  # day 31
    purge()
    assert left(old_phone) == (0, 0, 0)
    # The young code (issued on day 29) is kept, with its delivery.
    assert left(young_phone)[0] == 1 and left(young_phone)[1] == 1
