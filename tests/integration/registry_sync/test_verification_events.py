"""registry_sync through the real broker and database (issue #9 §5, §7):
the classmates answer recovery relies on, identity's auth_info_changed
running the comparison again on the account as identity now holds it
(idempotent on redelivery; issue #20 §1), and the
registry_verification_changed events in the outbox matching their
published contract."""

import uuid

from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy

from services.common.contract.events import PAYLOAD_SCHEMAS, new_envelope
from services.common.plumbing.testing import (
    random_school_code,
    wait_until,
)
from services.registry_sync.scim import STUDENT_URN
from tests.integration.registry_sync.stand_ins import IdentityStandIn, own_account

BASE = "http://127.0.0.1:8000/scim/v2"


def onboard(proxy, school):
    """The school's API token, which every SCIM call carries."""
    answer = proxy.onboard_school({"code": school, "name": "学校", "actor": "test"})
    return answer["api_token"]


def push(proxy, token, number, name, class_name=None):
    extension = {"studentNumber": number}
    if class_name:
        extension["className"] = class_name
    return proxy.scim_create(
        {
            "school_token": token,
            "action": "scim.users.create",
            "kind": "User",
            "base_url": BASE,
            "document": {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", STUDENT_URN],
                "userName": number,
                "name": {"formatted": name},
                STUDENT_URN: extension,
            },
        }
    )["document"]["id"]


def submit(proxy, school, number, name):
    account_id = own_account(name)
    answer = proxy.submit_verification(
        {
            "account_id": account_id,
            "school_code": school,
            "student_number": number,
            "name": name,
        }
    )
    return account_id, answer


def test_classmates_are_verified_students_of_one_school_and_class(registry):
    school, other_school = random_school_code(), random_school_code()
    with ServiceRpcProxy("registry_sync", registry) as proxy:
        token, other_token = onboard(proxy, school), onboard(proxy, other_school)
        push(proxy, token, "1", "甲", "一班")
        push(proxy, token, "2", "乙", "一 班")
        push(proxy, token, "3", "丙", "二班")
        push(proxy, token, "4", "丁")
        push(proxy, other_token, "1", "戊", "一班")
        a, answer = submit(proxy, school, "1", "甲")
        assert answer["status"] == "passed"
        b, _ = submit(proxy, school, "2", "乙")
        c, _ = submit(proxy, school, "3", "丙")
        d, _ = submit(proxy, school, "4", "丁")
        e, _ = submit(proxy, other_school, "1", "戊")
        unverified, failed = submit(proxy, school, "9", "己")
        assert failed["code"] == "not_in_registry"

        def ask(one, other):
            return proxy.classmates({"account_id": one, "other_account_id": other})

        same = ask(a, b)
        assert same["classmates"] and same["same_class"] is True
        assert same["verified_since"] and same["school_code"] == school
        other_class = ask(a, c)
        assert other_class["same_school"] and other_class["same_class"] is False
        assert not other_class["classmates"]
        # The registry knows no class for d: the same school is enough.
        unknown_class = ask(a, d)
        assert unknown_class["classmates"] and unknown_class["same_class"] is None
        for stranger in (e, unverified, str(uuid.uuid4()), a):
            answer = ask(a, stranger)
            assert not answer["classmates"] and answer["verified_since"] is None
        # Recovery tells "not verified" apart from "another school".
        assert ask(a, e)["other_verified"] and not ask(a, e)["same_school"]
        assert not ask(a, unverified)["other_verified"]
        assert ask(a, unverified)["account_verified"]
        assert not ask(unverified, a)["account_verified"]
        # No term known for the school: recovery counts in the half-year.
        assert same["term"] is None
        proxy.set_current_term({"school_code": school, "term": "2026-T1"})
        assert ask(a, b)["term"] == "2026-T1"


def test_auth_info_changed_sets_a_verification_back_once(registry, registry_sql):
    school = random_school_code()
    with ServiceRpcProxy("registry_sync", registry) as proxy:
        token = onboard(proxy, school)
        push(proxy, token, "1", "甲")
        account_id, answer = submit(proxy, school, "1", "甲")
        assert answer["status"] == "passed"
        dispatch = event_dispatcher(registry)
        envelope = new_envelope(
            "identity",
            "auth_info_changed",
            {
                "account_id": account_id,
                "fields_changed": ["name"],
                "school_code": school,
                "registry_reset": True,
            },
        )
        # identity renamed the account: the same comparison runs again on it.
        IdentityStandIn.ACCOUNTS[account_id]["name"] = "乙"
        dispatch("identity", "auth_info_changed", envelope)
        dispatch("identity", "auth_info_changed", envelope)  # redelivered

        def state():
            return proxy.verification_status({"account_id": account_id})

        wait_until(lambda: state()["status"] == "failed", message="re-checked")
        assert state()["code"] == "name_mismatch"
        handled = registry_sql(
            "SELECT count(*) AS n FROM processed_events WHERE event_id = %s",
            (envelope["event_id"],),
        )
        assert handled[0]["n"] == 1
        # Renamed back (a typo fixed): passed again, by itself.
        IdentityStandIn.ACCOUNTS[account_id]["name"] = "甲"
        again = new_envelope("identity", "auth_info_changed", envelope["payload"])
        dispatch("identity", "auth_info_changed", again)
        wait_until(lambda: state()["status"] == "passed", message="passed again")


def test_result_events_follow_their_contract(registry, registry_sql):
    school = random_school_code()
    with ServiceRpcProxy("registry_sync", registry) as proxy:
        token = onboard(proxy, school)
        account_id, answer = submit(proxy, school, "1", "甲")
        assert answer["status"] == "pending"
        push(proxy, token, "1", "甲", "一班")
    # Written in the same transaction as each outcome, so already there.
    rows = registry_sql(
        "SELECT payload FROM outbox WHERE event_type = 'registry_verification_changed'"
        " AND payload->>'account_id' = %s ORDER BY id",
        (account_id,),
    )
    schema = PAYLOAD_SCHEMAS["registry_verification_changed"]()
    payloads = [schema.load(row["payload"]) for row in rows]
    assert [(p["status"], p["code"]) for p in payloads] == [
        ("pending", "school_not_synced"),
        ("passed", None),
    ]
    assert payloads[1]["class_name"] == "一班"
    assert payloads[0]["as_of"] <= payloads[1]["as_of"]
