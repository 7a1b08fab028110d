"""Duplicate-ID resolution over HTTP (issue #10 §3, §4): an account that
registered anyway (``duplicate_pending``) proves it holds the ID number by a
photo a reviewer approves, or by a verified classmate's yes in the inbox;
the ID binding moves to it and the old account keeps existing without it."""

import io
import uuid

from PIL import Image

from services.common.plumbing.testing import random_phone, scim_student, wait_until

PASSWORD = "a long enough secret"


def register_anyway(api, codes, holder, name):
    """A second account with ``holder``'s ID number, logged in."""
    phone = random_phone("136")
    device = "dev-" + uuid.uuid4().hex
    body = {
        "phone": phone,
        "code": codes("register", phone),
        "password": PASSWORD,
        "name": name,
        "id_type": "resident_id",
        "id_number": holder["id_number"],
    }
    refused = api.post("/api/v1/accounts", json=body, headers={"X-Device-Id": device})
    assert refused.status_code == 409
    made = api.post(
        "/api/v1/accounts",
        json={**body, "code": codes("register", phone), "register_anyway": True},
        headers={"X-Device-Id": device},
    )
    assert made.status_code == 201 and made.json()["status"] == "duplicate_pending"
    session = api.post(
        "/api/v1/sessions",
        json={"login": phone, "password": PASSWORD},
        headers={"X-Device-Id": device},
    )
    assert session.status_code == 201, session.text
    auth = {"Authorization": f"Bearer {session.json()['token']}", "X-Device-Id": device}
    return {**body, **made.json(), "device": device, "auth": auth}


def jpeg(size=(640, 480), exif=True):
    out = io.BytesIO()
    extra = {}
    if exif:
        data = Image.Exif()
        data[0x010F] = "SecretPhoneMaker"
        extra["exif"] = data
    Image.new("RGB", size, (90, 140, 200)).save(out, format="JPEG", **extra)
    return out.getvalue()


def upload(api, who, data, name="me.jpg", mime="image/jpeg"):
    return api.post(
        "/api/v1/me/duplicate-id/photo",
        files={"photo": (name, data, mime)},
        headers=who["auth"],
    )


def me(api, who):
    return api.get("/api/v1/me", headers=who["auth"]).json()


def test_photo_review_moves_the_id_and_the_old_account_keeps_existing(
    api, codes, inbox, student, staff
):
    holder = student(name="韩梅梅", email=f"hmm{uuid.uuid4().hex[:6]}@x.cn")
    newcomer = register_anyway(api, codes, holder, "韩梅梅")
    # Only a duplicate_pending account has anything to resolve.
    wrong_state = upload(api, holder, jpeg())
    assert wrong_state.status_code == 409
    assert wrong_state.json()["code"] == "not_duplicate_pending"
    # Judged by content, not by name or declared type.
    fake = upload(api, newcomer, b"GIF89a" + b"\0" * 400, name="photo.jpg")
    assert fake.status_code == 422 and fake.json()["code"] == "photo_not_image"
    big = upload(api, newcomer, b"\xff\xd8\xff" + b"\0" * (5 * 1024 * 1024 + 10))
    assert big.status_code in (400, 422) and big.json()["code"] == "photo_too_large"
    small = upload(api, newcomer, jpeg(size=(100, 80)))
    assert small.status_code == 422 and small.json()["code"] == "photo_too_small"

    sent = upload(api, newcomer, jpeg(), name="x.png", mime="image/png")
    assert sent.status_code == 202, sent.text
    review = sent.json()
    assert review["status"] == "open" and review["kind"] == "duplicate_photo"
    assert review["service_level"]["promise_en"] == "answered within 2 working days"
    again = upload(api, newcomer, jpeg())
    assert again.status_code == 409 and again.json()["code"] == "review_in_progress"
    status = api.get("/api/v1/me/duplicate-id", headers=newcomer["auth"]).json()
    assert status["account_status"] == "duplicate_pending" and not status["resolved"]
    assert [r["review_id"] for r in status["reviews"]] == [review["review_id"]]

    # Reviewers only.
    assert api.get("/api/v1/admin/reviews", headers=holder["auth"]).json()["code"] == (
        "role_required"
    )
    reviewer = staff("reviewer")
    queue = api.get("/api/v1/admin/reviews?status=open&limit=100",
                    headers=reviewer["auth"]).json()  # fmt: skip
    assert review["review_id"] in [r["review_id"] for r in queue["items"]]
    photo = api.get(f"/api/v1/admin/reviews/{review['review_id']}/photo",
                    headers=reviewer["auth"])  # fmt: skip
    assert photo.status_code == 200 and photo.headers["Content-Type"] == "image/jpeg"
    assert b"SecretPhoneMaker" not in photo.content
    assert Image.open(io.BytesIO(photo.content)).size == (640, 480)

    mails = len(inbox.messages(holder["email"]))
    decided = api.post(
        f"/api/v1/admin/reviews/{review['review_id']}/decision",
        json={"approve": True, "reason": "照片清晰，人证一致"},
        headers=reviewer["auth"],
    )
    assert decided.status_code == 200 and decided.json()["status"] == "approved"
    twice = api.post(
        f"/api/v1/admin/reviews/{review['review_id']}/decision",
        json={"approve": False, "reason": "改主意"},
        headers=reviewer["auth"],
    )
    assert twice.status_code == 409 and twice.json()["code"] == "review_decided"

    wait_until(lambda: me(api, newcomer)["status"] == "active", message="ID moved")
    assert me(api, newcomer)["id_number_masked"].endswith(holder["id_number"][-4:])
    old = me(api, holder)  # the old account keeps existing, without the ID
    assert old["status"] == "active" and old["id_number_masked"] is None
    told = inbox.wait_for_new(holder["email"], mails)
    assert "证件号码已转移" in told["body"]
    # The ID number now logs into the account that proved it.
    session = api.post(
        "/api/v1/sessions",
        json={"login": holder["id_number"], "password": PASSWORD},
        headers={"X-Device-Id": newcomer["device"]},
    )
    assert session.status_code == 201, session.text
    outcome = api.get("/api/v1/me/inbox", headers=newcomer["auth"]).json()
    assert outcome["items"][0]["kind"] == "review_outcome"
    assert outcome["items"][0]["params"]["reason"] == "照片清晰，人证一致"
    assert outcome["unread"] == 1


def push(api, token, number, name):
    answer = api.post(
        "/scim/v2/Users",
        json=scim_student(number, name),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 201, answer.text


def verify(api, who, code, number, name):
    answer = api.post(
        "/api/v1/me/registry-verification",
        json={"school_code": code, "student_number": number, "name": name},
        headers=who["auth"],
    )
    assert answer.json()["status"] == "passed", answer.text
    wait_until(lambda: me(api, who)["school_code"] == code, message="identity told")


def ask_and_answer(api, newcomer, helper, approve=True):
    """The newcomer names ``helper``; the helper answers in the inbox."""
    asked = api.post(
        "/api/v1/me/duplicate-id/assistance-requests",
        json={"classmate_name": helper["name"], "classmate_phone": helper["phone"]},
        headers=newcomer["auth"],
    )
    assert asked.status_code == 201, asked.text
    box = api.get("/api/v1/me/inbox", headers=helper["auth"]).json()
    message = next(m for m in box["items"] if m["kind"] == "assistance_request")
    return api.post(f"/api/v1/me/inbox/{message['message_id']}/answer",
                    json={"approve": approve}, headers=helper["auth"])  # fmt: skip


def moves_of(api, who):
    items = api.get("/api/v1/me/inbox", headers=who["auth"]).json()["items"]
    return [m["params"] for m in items if m["kind"] == "duplicate_move"]


def test_a_classmates_yes_in_the_inbox_resolves_it_and_the_sixth_request_waits(
    api, codes, school, student, age, inbox, service_sql
):
    code, token = school
    holder = student(name="李雷")
    newcomer = register_anyway(api, codes, holder, "李雷")
    classmate = student(name="林涛")
    second = student(name="韩梅")
    for who, number, name in ((newcomer, "D1", "李雷"), (classmate, "D2", "林涛"),
                              (second, "D3", "韩梅")):  # fmt: skip
        push(api, token, number, name)
        verify(api, who, code, number, name)
    # Helpers pass a voucher's guards: not created or verified recently.
    age(classmate["account_id"])
    age(second["account_id"])

    asked = api.post(
        "/api/v1/me/duplicate-id/assistance-requests",
        json={"classmate_name": "林涛", "classmate_phone": classmate["phone"]},
        headers=newcomer["auth"],
    )
    assert asked.status_code == 201, asked.text
    assert asked.json()["remaining_today"] == 4
    # Naming someone who is not a verified student of my school counts too.
    for name, phone in (("林涛", random_phone()), ("别人", classmate["phone"]),
                        ("李雷", holder["phone"]), ("无名", random_phone())):  # fmt: skip
        refused = api.post(
            "/api/v1/me/duplicate-id/assistance-requests",
            json={"classmate_name": name, "classmate_phone": phone},
            headers=newcomer["auth"],
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "classmate_not_eligible"
    sixth = api.post(
        "/api/v1/me/duplicate-id/assistance-requests",
        json={"classmate_name": "林涛", "classmate_phone": classmate["phone"]},
        headers=newcomer["auth"],
    )
    assert sixth.status_code == 429 and sixth.json()["code"] == "assistance_daily_limit"
    assert sixth.json()["resets_at"].endswith("+08:00")

    box = api.get("/api/v1/me/inbox", headers=classmate["auth"]).json()
    assert box["to_answer"] == 1 and box["unread"] == 1
    message = box["items"][0]
    assert message["kind"] == "assistance_request" and message["needs_answer"]
    assert message["params"]["requester_name"] == "李雷"
    # Someone else's message is not mine to answer.
    foreign = api.post(f"/api/v1/me/inbox/{message['message_id']}/answer",
                       json={"approve": True}, headers=newcomer["auth"])  # fmt: skip
    assert foreign.status_code == 404
    yes = api.post(f"/api/v1/me/inbox/{message['message_id']}/answer",
                   json={"approve": True}, headers=classmate["auth"])  # fmt: skip
    assert yes.status_code == 200 and yes.json()["answer"] is True
    same = api.post(f"/api/v1/me/inbox/{message['message_id']}/answer",
                    json={"approve": True}, headers=classmate["auth"])  # fmt: skip
    assert same.status_code == 200
    other = api.post(f"/api/v1/me/inbox/{message['message_id']}/answer",
                     json={"approve": False}, headers=classmate["auth"])  # fmt: skip
    assert other.status_code == 409 and other.json()["code"] == "message_answered"

    # One yes is not enough: as many helpers as a phone recovery's vouches.
    mine = api.get("/api/v1/me/inbox", headers=newcomer["auth"]).json()
    assert mine["items"][0]["kind"] == "assistance_outcome"
    assert mine["items"][0]["params"] == {
        "approved": True,
        "helpers": 1,
        "helpers_needed": 2,
    }
    read = api.post(f"/api/v1/me/inbox/{mine['items'][0]['message_id']}/read",
                    headers=newcomer["auth"])  # fmt: skip
    assert read.status_code == 200
    assert api.get("/api/v1/me/inbox", headers=newcomer["auth"]).json()["unread"] == 0
    assert me(api, newcomer)["status"] == "duplicate_pending"

    # The second yes starts the dispute window: the holder is told on every
    # bound channel with a "not me" link; both sides see the date. (A new
    # Beijing day for the newcomer's 5 requests, spent above.)
    service_sql(
        "recovery",
        "DELETE FROM counters WHERE subject = %s",
        (f"assist-day:{newcomer['account_id']}",),
    )
    before = len(inbox.messages(holder["phone"]))
    assert ask_and_answer(api, newcomer, second).status_code == 200
    told = inbox.wait_for_new(holder["phone"], before)
    assert "/duplicate-id/not-me/" in told["body"] and "异议" in told["body"]
    for who, side in ((newcomer, "requester"), (holder, "holder")):
        moves = wait_until(lambda who=who: moves_of(api, who), message="inbox")
        assert moves[0]["state"] == "holding" and moves[0]["side"] == side
        assert moves[0]["effective_at"]
    status = api.get("/api/v1/me/duplicate-id", headers=newcomer["auth"]).json()
    assert not status["resolved"]
    assert status["assistance_requests"][0]["status"] == "approved"
    assert me(api, holder)["id_number_masked"] is not None

    # The window ends undisputed: the number moves, both sides are told.
    service_sql(
        "recovery",
        "UPDATE duplicate_resolutions SET effective_at = now() - interval '1 second'"
        " WHERE account_id = %s",
        (newcomer["account_id"],),
    )
    wait_until(lambda: me(api, newcomer)["status"] == "active", message="ID moved")
    assert me(api, holder)["id_number_masked"] is None
    assert wait_until(
        lambda: [m for m in moves_of(api, holder) if m["state"] == "applied"],
        message="holder told",
    )
    status = api.get("/api/v1/me/duplicate-id", headers=newcomer["auth"]).json()
    assert status["resolved"]
