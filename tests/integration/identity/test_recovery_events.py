"""identity applying what recovery decided, through the real broker and
database (issue #10): a completed phone recovery is taken over once however
often its event arrives, "not me" locks the account and puts the old phone
back, a reviewer's decision unlocks it, and a settled duplicate moves the ID
binding once while the old account keeps existing."""

import uuid

import pytest
from nameko.rpc import rpc as stock_rpc
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy

from services.common.contract.errors import Forbidden, Unauthenticated
from services.common.contract.events import new_envelope
from services.common.plumbing.testing import random_phone, wait_until

from .test_registration import platform, random_id_number, register  # noqa: F401

HANDOVERS = {}
NOT_ME_URL = "http://127.0.0.1:8000/not-me/TEST-NOT-ME-TOKEN"


class FakeRecovery:
    """Stands in for the recovery service's one RPC identity calls."""

    name = "recovery"

    @stock_rpc
    def recovery_handover(self, recovery_id):
        return HANDOVERS[recovery_id]


@pytest.fixture
def recovery_stub(container_factory, make_config, platform):  # noqa: F811
    container_factory(FakeRecovery, make_config("recovery")).start()
    return platform


def send(config, event_type, payload, envelope=None):
    envelope = envelope or new_envelope("recovery", event_type, payload)
    event_dispatcher(config)("recovery", event_type, envelope)
    return envelope


def login(config, login_name, password, device):
    with ServiceRpcProxy("identity", config) as identity:
        return identity.login(
            {"login": login_name, "password": password, "device_id": device}
        )


def test_a_completed_recovery_is_applied_once_and_not_me_takes_it_back(
    recovery_stub, capture, db_query
):
    config = recovery_stub
    sql = db_query("identity")
    old_phone, email = random_phone(), f"r-{uuid.uuid4().hex[:8]}@school.edu.cn"
    account = register(
        config,
        capture,
        old_phone,
        random_id_number(),
        email=email,
        device_id="dev-registered",
    )
    account_id = account["account_id"]
    session = login(config, old_phone, "long enough secret", "dev-registered")
    assert session["token"]
    with ServiceRpcProxy("identity", config) as identity:
        new_hash = identity.hash_new_password({"password": "the new secret 42"})
    recovery_id, new_phone = str(uuid.uuid4()), random_phone("139")
    HANDOVERS[recovery_id] = {
        "recovery_id": recovery_id,
        "account_id": account_id,
        "new_phone": new_phone,
        "password_hash": new_hash["password_hash"],
        "not_me_url": NOT_ME_URL,
        "cancel_until": "2030-01-01T00:00:00+00:00",
    }
    payload = {"recovery_id": recovery_id, "account_id": account_id}
    first = send(config, "phone_recovery_completed", payload)
    send(config, "phone_recovery_completed", payload, envelope=first)  # redelivered
    send(config, "phone_recovery_completed", payload)  # published twice

    def applied():
        return sql(
            "SELECT * FROM account_recoveries WHERE account_id = %s", (account_id,)
        )

    rows = wait_until(applied, message="the hand-over applied")
    wait_until(
        lambda: (
            len(
                sql(
                    "SELECT 1 FROM processed_events WHERE handler LIKE "
                    "'%%on_phone_recovery_completed'"
                )
            )
            >= 2
        ),  # fmt: skip
        message="every copy handled",
    )
    assert len(applied()) == 1 and rows[0]["sealed_old_phone"]
    phone_row = sql("SELECT phone FROM accounts WHERE id = %s", (account_id,))[0]
    assert phone_row["phone"] == "+86" + new_phone
    kinds = sql(
        "SELECT kind, channel, count(*) AS n FROM notices WHERE account_id = %s "
        "AND kind LIKE 'phone_recovered%%' GROUP BY kind, channel ORDER BY 1, 2",
        (account_id,),
    )
    assert [(k["kind"], k["channel"], k["n"]) for k in kinds] == [
        ("phone_recovered", "sms", 1),
        ("phone_recovered_elsewhere", "email", 1),
        ("phone_recovered_elsewhere", "sms", 1),
    ]
    mail = wait_until(
        lambda: [m for m in capture.messages(email) if "/not-me/" in m["body"]],
        timeout=15,
        message="the not-me notice by email",
    )
    assert NOT_ME_URL in mail[0]["body"]
    # Handed to the delivery queue, the link is no longer kept by identity.
    wait_until(
        lambda: (
            not sql(
                "SELECT 1 FROM notices WHERE account_id = %s AND params ? 'not_me_url'",
                (account_id,),
            )
        ),  # fmt: skip
        message="the not-me link wiped",
    )
    with pytest.raises(Unauthenticated):
        login(config, old_phone, "long enough secret", "dev-registered")
    assert login(config, "+86" + new_phone, "the new secret 42", "dev-registered")

    reverted = {"recovery_id": recovery_id, "account_id": account_id}
    send(config, "phone_recovery_reverted", reverted)
    send(config, "phone_recovery_reverted", reverted)

    def locked():
        try:
            login(config, old_phone, "long enough secret", "dev-registered")
        except Forbidden as refusal:
            return refusal.code == "account_locked"
        except Exception:
            return False
        return False

    wait_until(locked, message="locked with its old phone and password back")
    assert sql("SELECT reverted_at FROM account_recoveries WHERE recovery_id = %s",
               (recovery_id,))[0]["reverted_at"]  # fmt: skip
    send(
        config,
        "recovery_dispute_decided",
        {
            "review_id": str(uuid.uuid4()),
            "account_id": account_id,
            "unlock": True,
            "decided_by": "account:reviewer",
        },  # fmt: skip
    )
    wait_until(
        lambda: (
            not sql("SELECT locked_at FROM accounts WHERE id = %s", (account_id,))[0][
                "locked_at"
            ]
        ),  # fmt: skip
        message="unlocked by the review",
    )
    assert login(config, old_phone, "long enough secret", "dev-registered")["token"]


def test_a_settled_duplicate_moves_the_id_once(recovery_stub, capture, db_query):
    config = recovery_stub
    sql = db_query("identity")
    id_number = random_id_number()
    holder = register(config, capture, random_phone(), id_number)
    newcomer = register(
        config, capture, random_phone("136"), id_number, register_anyway=True
    )
    assert newcomer["status"] == "duplicate_pending"
    for _ in range(2):  # a second approval (another resolution) changes nothing
        send(
            config,
            "duplicate_resolved",
            {
                "resolution_id": str(uuid.uuid4()),
                "account_id": newcomer["account_id"],
                "via": "review:test",
            },  # fmt: skip
        )

    def moved():
        return sql("SELECT * FROM id_moves WHERE account_id = %s",
                   (newcomer["account_id"],))  # fmt: skip

    wait_until(moved, message="the ID binding moved")
    wait_until(
        lambda: (
            len(
                sql(
                    "SELECT 1 FROM processed_events WHERE handler LIKE "
                    "'%%on_duplicate_resolved'"
                )
            )
            >= 2
        ),  # fmt: skip
        message="both approvals handled",
    )
    assert (
        len(moved()) == 1 and str(moved()[0]["from_account_id"]) == holder["account_id"]
    )
    rows = {
        str(r["id"]): r
        for r in sql(
            "SELECT id, status, id_number_hash FROM accounts WHERE id = ANY(%s::uuid[])",
            ([holder["account_id"], newcomer["account_id"]],),
        )
    }
    assert rows[newcomer["account_id"]]["status"] == "active"
    assert rows[newcomer["account_id"]]["id_number_hash"]
    assert rows[holder["account_id"]]["status"] == "active"  # kept, never cancelled
    assert rows[holder["account_id"]]["id_number_hash"] is None
    audit = sql("SELECT action, detail::text AS detail FROM audit_log WHERE account_id "
                "= ANY(%s::uuid[])", ([holder["account_id"], newcomer["account_id"]],))  # fmt: skip
    actions = {a["action"] for a in audit}
    assert {"id_binding_moved_away", "id_binding_moved_here"} <= actions
    assert id_number not in " ".join(a["detail"] for a in audit)
