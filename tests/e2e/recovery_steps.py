"""The first two steps of a phone recovery over HTTP, as a requester takes
them; shared by the recovery e2e tests and the fault tier's load."""

from services.common.plumbing.testing import random_client_ip, random_phone

NEW_PASSWORD = "a brand new secret 2026"


def from_ip():
    return {"X-Forwarded-For": random_client_ip()}


def start(api, school_code, number, name, headers=None):
    return api.post(
        "/api/v1/phone-recoveries",
        json={"school_code": school_code, "student_number": number, "name": name},
        headers=headers or from_ip(),
    )


def to_awaiting(api, codes, who):
    """Steps 1 and 2 for ``who``: returns (flow, share token, new phone)."""
    started = start(api, who["school_code"], who["student_number"], who["name"])
    assert started.status_code == 201, started.text
    flow = started.json()
    new_phone = random_phone("139")
    answer = api.post(
        f"/api/v1/phone-recoveries/{flow['recovery_id']}/new-phone",
        json={
            "old_phone": who["phone"],
            "new_phone": new_phone,
            "code": codes("recover_phone", new_phone),
            "new_password": NEW_PASSWORD,
        },
        headers={"X-Recovery-Token": flow["recovery_token"]},
    )
    assert answer.status_code == 200, answer.text
    link = answer.json()
    assert link["share_url"].endswith("/v/" + link["share_token"])
    return flow, link["share_token"], new_phone
