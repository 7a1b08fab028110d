"""A SCIM create by a token registry_sync already knows is one statement
(issue #23): the body is judged against the school's sources as last seen,
and the statement checks the token and those sources again. These tests
hold it to the two-step way's answers — a rotated token is refused, changed
sources are honoured, a refused create is still audited as a call, a
verification naming the new student is re-judged — through the real broker
and database."""

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.utils import get_extension

from services.common.plumbing.testing import random_resident_id, random_school_code
from services.registry_sync.dependencies import KnownSchools
from services.registry_sync.scim import STUDENT_URN
from tests.integration.registry_sync.stand_ins import own_account

BASE = "http://127.0.0.1:8000/scim/v2"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.fixture
def known(registry_container):
    """The running service's per-process memory of school tokens."""
    return get_extension(registry_container, KnownSchools)


def create(proxy, token, user_name, name="张三", **extra):
    document = {
        "schemas": [CORE_USER, STUDENT_URN],
        "userName": user_name,
        "name": {"formatted": name},
        **extra,
    }
    return create_from(proxy, token, document)


def create_from(proxy, token, document):
    return proxy.scim_create(
        {
            "school_token": token,
            "action": "scim.users.create",
            "kind": "User",
            "base_url": BASE,
            "document": document,
        }
    )


def learn(proxy, token):
    """Any SCIM call: the process now knows which school the token names."""
    return proxy.scim_list(
        {
            "school_token": token,
            "action": "scim.users.list",
            "kind": "User",
            "base_url": BASE,
        }
    )


def refused(call):
    """The refusal's type and code (a ServiceError arrives as itself)."""
    with pytest.raises(Exception) as caught:
        call()
    error = caught.value
    if isinstance(error, RemoteError):
        return error.exc_type, error.value
    return type(error).__name__, str(error)


def audit_of(registry_sql, code):
    return registry_sql(
        "SELECT action, object_ids, at FROM audit_log WHERE school_code = %s"
        " ORDER BY id",
        (code,),
    )


def onboard(proxy):
    code = random_school_code()
    token = proxy.onboard_school({"code": code, "name": "学校", "actor": "test"})
    return code, token["api_token"]


def test_a_known_tokens_create_is_audited_in_order_in_one_statement(
    registry, known, registry_sql
):
    config = registry
    with ServiceRpcProxy("registry_sync", config) as proxy:
        code, token = onboard(proxy)
        learn(proxy, token)
        assert [s["code"] for s in known.by_token_hash.values()].count(code) == 1
        number = random_resident_id(2010)
        made = create(
            proxy, token, "K1", **{STUDENT_URN: {"idType": "resident_id",
                                                 "idNumber": number}}
        )  # fmt: skip
    assert made["status"] == 201
    document = made["document"]
    assert document["userName"] == "K1"
    assert document[STUDENT_URN]["idNumber"] == number
    assert made["etag"] == 'W/"1"'
    rows = audit_of(registry_sql, code)
    assert [r["action"] for r in rows[-3:]] == [
        "scim.users.list",
        "scim.users.create",
        "scim.user_created",
    ]
    call, created = rows[-2:]
    assert created["object_ids"] == {"resource_id": document["id"]}
    # Written by one statement (one transaction: one clock reading); the
    # two-step way audits the call in a transaction of its own, earlier.
    assert call["at"] == created["at"]


def test_a_rotated_token_is_refused_though_the_process_knew_it(
    registry, known, registry_sql
):
    config = registry
    with ServiceRpcProxy("registry_sync", config) as proxy:
        code, token = onboard(proxy)
        create(proxy, token, "R1")
        new_token = proxy.rotate_school_token({"code": code, "actor": "test"})[
            "api_token"
        ]
        exc_type, value = refused(lambda: create(proxy, token, "R2"))
        assert exc_type == "Unauthenticated" and "invalid_school_token" in value
        # A bad body with the old token: the token is told first.
        exc_type, value = refused(lambda: create_from(proxy, token, "not an object"))
        assert exc_type == "Unauthenticated" and "invalid_school_token" in value
        assert create(proxy, new_token, "R2")["status"] == 201
    users = registry_sql(
        "SELECT user_name FROM students WHERE school_code = %s ORDER BY user_name",
        (code,),
    )
    assert [u["user_name"] for u in users] == ["R1", "R2"]
    assert len(known.by_token_hash) >= 1


def test_a_refused_create_by_a_known_token_writes_nothing_but_its_call(
    registry, registry_sql
):
    config = registry
    with ServiceRpcProxy("registry_sync", config) as proxy:
        code, token = onboard(proxy)
        create(proxy, token, "D1")
        before = len(audit_of(registry_sql, code))
        exc_type, value = refused(lambda: create(proxy, token, "D1"))
        assert exc_type == "Conflict" and "scim_uniqueness" in value
        exc_type, value = refused(lambda: create_from(proxy, token, "not an object"))
        assert exc_type == "InvalidRequest" and "scim_invalid_syntax" in value
        exc_type, value = refused(lambda: create(proxy, token, " "))
        assert exc_type == "InvalidRequest" and "scim_invalid_value" in value
    rows = audit_of(registry_sql, code)[before:]
    assert [r["action"] for r in rows] == ["scim.users.create"] * 3
    count = registry_sql(
        "SELECT count(*) AS n FROM students WHERE school_code = %s", (code,)
    )
    assert count[0]["n"] == 1


def test_changed_sources_are_honoured_on_the_next_create(registry):
    config = registry
    with ServiceRpcProxy("registry_sync", config) as proxy:
        code, token = onboard(proxy)
        create(proxy, token, "S1")  # known, with the default sources
        proxy.set_scim_sources(
            {
                "code": code,
                "sources": {"id_number": ["employeeNumber"]},
                "actor": "test",
            }
        )
        number = random_resident_id(2010)
        made = create(
            proxy,
            token,
            "S2",
            schemas=[CORE_USER, ENTERPRISE],
            **{ENTERPRISE: {"employeeNumber": number}},
        )
    assert made["document"][STUDENT_URN]["idNumber"] == number


def test_a_verification_naming_the_new_student_is_judged_again(registry, known):
    config = registry
    with ServiceRpcProxy("registry_sync", config) as proxy:
        code, token = onboard(proxy)
        create(proxy, token, "V1", name="甲")  # the school has a roster now
        account_id = own_account("乙")
        submitted = proxy.submit_verification(
            {
                "account_id": account_id,
                "school_code": code,
                "student_number": "V2",
                "name": "乙",
            }
        )
        assert submitted["code"] == "not_in_registry"
        assert known.by_token_hash  # the next create goes the one-statement way
        made = create(proxy, token, "V2", name="乙")
        assert made["status"] == 201 and made["document"]["userName"] == "V2"
        status = proxy.verification_status({"account_id": account_id})
    assert status["status"] == "passed"
