"""Forgot phone with three browsers (the requester and two classmates), the
vouch page's refusals, "not me"; duplicate ID by photo and the reviewer's
queue; the inbox; registry verification; the school admin's unmatched list;
the 404 page; security headers and CSRF — in a browser."""

import io
import re
import uuid

import requests
from PIL import Image
from playwright.sync_api import expect

from services.common.plumbing.testing import random_phone

from .conftest import PASSWORD, PHONE, sign_in


def to_share_link(page, inbox, requester, wrong_first=False):
    """Steps 1 and 2 of forgot phone on the page; ``(share url, new phone)``.
    ``wrong_first``: the old phone typed wrong once, refused at its field."""
    page.goto("/forgot-phone")
    page.fill("#f-school_code", requester["school_code"])
    page.fill("#f-student_number", requester["student_number"])
    page.fill("#f-name", requester["name"])
    page.click("#fp-step-1 button.primary")
    expect(page.locator("#fp-step-2")).to_be_visible()
    hint = requester["phone"][:3] + "****" + requester["phone"][-2:]
    expect(page.locator("#old-phone-hint")).to_have_text(hint)
    page.fill("#f-old_phone", random_phone() if wrong_first else requester["phone"])
    new_phone = random_phone("139")
    page.fill("#f-new_phone", new_phone)
    before = len(inbox.messages(new_phone))
    page.click("button[data-code-purpose=recover_phone]")
    page.fill("#f-code", inbox.code(new_phone, before))
    page.fill("#f-new_password", "my new password 2026")
    page.click("#fp-step-2 button.primary")
    if wrong_first:
        expect(page.locator("#e-old_phone")).not_to_be_empty()
        page.fill("#f-old_phone", requester["phone"])
        page.click("#fp-step-2 button.primary")
    expect(page.locator("#fp-step-3")).to_be_visible()
    return page.input_value("#share-url"), new_phone


def test_forgot_phone_with_two_classmates_in_three_browsers(
    person, inbox, school, enrolled, shots
):
    requester = enrolled(school, name="诸葛亮", aged=False)
    mates = [enrolled(school, name=n) for n in ("赵云", "马超")]
    page = person(size=PHONE)
    share_url, new_phone = to_share_link(page, inbox, requester, wrong_first=True)
    assert "/v/" in share_url
    expect(page.locator("#share-qr")).to_have_attribute("src", re.compile("qr.svg"))
    qr = requests.get(page.locator("#share-qr").evaluate("img => img.src"), timeout=10)
    assert qr.status_code == 200 and qr.headers["Content-Type"].startswith("image/svg")
    # Drawn in the page (a broken image has no natural size).
    expect(page.locator("#share-qr")).to_have_js_property("complete", True)
    assert page.locator("#share-qr").evaluate("img => img.naturalWidth") > 50
    page.click("#copy-share")
    expect(page.locator("#copied")).not_to_be_empty()
    expect(page.locator("[data-field=vouches]").first).to_have_text("0")
    shots(page, "share-link")

    for index, mate in enumerate(mates):
        friend = person(size=PHONE)
        sign_in(friend, mate["phone"], inbox=inbox, phone=mate["phone"])
        friend.goto(share_url)
        expect(friend.locator("#vouch-box")).to_be_visible()
        expect(friend.locator("[data-field=requester_name]")).to_have_text("诸葛亮")
        expect(friend.locator(".warning")).to_contain_text("请确认")
        masked = new_phone[:3] + "****" + new_phone[-4:]
        expect(friend.locator("[data-field=new_phone_masked]")).to_have_text(masked)
        if index == 0:
            shots(friend, "vouch-page")
        friend.click("#vouch-form button.primary")
        expect(friend.locator("#vouch-done")).to_be_visible()
        assert not friend.errors, friend.errors
    expect(page.locator("#fp-completed")).to_be_visible(timeout=20_000)
    shots(page, "completed")

    done = person()
    sign_in(done, new_phone, "my new password 2026", inbox, new_phone)
    expect(done.locator("dd[data-field=phone_masked]")).to_have_text(
        new_phone[:3] + "****" + new_phone[-4:]
    )
    assert not page.errors, page.errors


def test_the_vouch_page_refuses_in_the_page_language(person, inbox, school, enrolled):
    requester = enrolled(school, class_name="二班", name="司马懿", aged=False)
    stranger = enrolled(school, class_name="三班", name="曹操")
    page = person(lang="en")
    share_url, _ = to_share_link(page, inbox, requester)
    other = person(lang="en")
    sign_in(other, stranger["phone"], inbox=inbox, phone=stranger["phone"])
    other.goto(share_url)
    other.click("#vouch-form button.primary")
    error = other.locator("#vouch-form .form-error")
    expect(error).to_contain_text("cannot vouch")
    expect(error).to_contain_text("not the same class")
    assert not re.search(r"[\u4e00-\u9fff]{3}", error.inner_text())


def jpeg_bytes():
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (120, 160, 200)).save(out, format="JPEG")
    return out.getvalue()


def test_duplicate_photo_then_the_reviewer_decides(
    person, inbox, api, codes, student, staff, tmp_path, shots
):
    holder = student(name="孙权", login=False)
    phone = random_phone("136")
    device = "dev-" + uuid.uuid4().hex
    made = api.post(
        "/api/v1/accounts",
        json={
            "phone": phone,
            "code": codes("register", phone),
            "password": PASSWORD,
            "name": "孙权",
            "id_type": "resident_id",
            "id_number": holder["id_number"],
            "register_anyway": True,
        },  # fmt: skip
        headers={"X-Device-Id": device},
    )
    assert made.json()["status"] == "duplicate_pending", made.text
    page = person(size=PHONE)
    sign_in(page, phone, inbox=inbox, phone=phone)
    page.goto("/duplicate-id")
    expect(page.locator("[data-field=account_status]")).to_have_text("证件重复待处理")
    fake = tmp_path / "photo.jpg"
    fake.write_bytes(b"GIF89a" + b"\0" * 300)
    page.set_input_files("#f-photo", str(fake))
    page.click("form[data-api*=photo] button.primary")
    expect(page.locator("#e-photo")).to_contain_text("JPEG")
    real = tmp_path / "me.jpg"
    real.write_bytes(jpeg_bytes())
    page.set_input_files("#f-photo", str(real))
    page.click("form[data-api*=photo] button.primary")
    expect(page.locator("#reviews")).to_contain_text("审核中")
    expect(page.locator("#reviews")).to_contain_text("2个工作日内答复")
    shots(page, "duplicate")

    reviewer = staff("reviewer")
    desk = person()
    sign_in(desk, reviewer["phone"], inbox=inbox, phone=reviewer["phone"])
    desk.goto("/admin/reviews")
    item = (
        desk.locator("#review-list li")
        .filter(has=desk.locator("img.review-photo"))
        .last
    )
    expect(item.locator("img.review-photo")).to_be_visible()
    natural = item.locator("img.review-photo").evaluate("img => img.naturalWidth")
    assert natural == 640
    shots(desk, "review-queue")
    item.locator("input[name=reason]").fill("照片清晰，人证一致")
    item.locator("button.primary").click()
    expect(desk.locator("#review-list li img.review-photo")).to_have_count(0)
    page.goto("/inbox")
    expect(page.locator("#inbox-list")).to_contain_text("审核结果")
    expect(page.locator("#inbox-list")).to_contain_text("照片清晰，人证一致")
    shots(page, "inbox")


def test_registry_pending_then_passed_and_the_school_admin_list(
    person, inbox, api, school, student, staff, internal_auth, shots
):
    code, token = school
    who = student(name="周瑜", login=False)
    page = person()
    sign_in(page, who["phone"], inbox=inbox, phone=who["phone"])
    page.goto("/registry")
    page.fill("#f-school_code", code)
    page.fill("#f-student_number", "R-1")
    page.fill("#f-name", "周瑜")
    page.click("form[data-api='POST /api/v1/me/registry-verification'] button.primary")
    expect(page.locator("#registry-state")).to_have_text("待核验")
    expect(page.locator("#registry-code")).to_have_text("学校尚未同步学籍")
    shots(page, "pending")

    admin = student(name="鲁肃", login=False)
    granted = api.put(
        f"/api/v1/internal/accounts/{admin['account_id']}/roles",
        json={"roles": [{"role": "school_admin", "school_code": code}]},
        headers=internal_auth,
    )
    assert granted.status_code == 200
    desk = person()
    sign_in(desk, admin["phone"], inbox=inbox, phone=admin["phone"])
    desk.goto(f"/admin/schools/{code}/unmatched")
    row = desk.locator(f"tr[data-account='{who['account_id']}']")
    expect(row).to_contain_text("待核验")
    shots(desk, "unmatched")
    api.post(
        "/scim/v2/Users",
        json={
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:student-selfservice:params:scim:schemas:extension:student:2.0:Student",
            ],
            "userName": "R-1",
            "name": {"formatted": "周瑜"},
            "urn:student-selfservice:params:scim:schemas:extension:student:2.0:Student": {
                "studentNumber": "R-1"
            },
        },  # fmt: skip
        headers={"Authorization": f"Bearer {token}"},
    ).raise_for_status()
    row.locator("button").first.click()  # check again
    page.reload()
    expect(page.locator("#registry-state")).to_have_text("已通过")


def test_not_found_page_security_headers_and_csrf(person, platform, student, inbox):
    page = person()
    answer = page.goto("/no/such/page")
    assert answer.status == 404
    expect(page.locator("h1")).to_have_text("页面不存在")
    request_id = answer.headers["x-request-id"]
    expect(page.locator("#error-request-id")).to_have_text(request_id)
    home = page.goto("/")
    headers = home.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in page.content() and " on" not in re.sub(
        r'"[^"]*"', "", re.sub(r">[^<]*<", "><", page.content())
    ).replace(" only", "")
    # A cookie session without the CSRF token changes nothing.
    who = student(name="黄忠", login=False)
    sign_in(page, who["phone"], inbox=inbox, phone=who["phone"])
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    jar = {"sid": cookies["sid"], "did": cookies["did"]}
    forged = requests.put(
        f"{platform.gateway_url}/api/v1/me/email",
        json={"password": PASSWORD, "new_email": "x@y.cn", "code": "123456"},
        cookies=jar,
        timeout=10,
    )
    assert forged.status_code == 403 and forged.json()["code"] == "csrf_failed"
    read = requests.get(f"{platform.gateway_url}/api/v1/me", cookies=jar, timeout=10)
    assert read.status_code == 200  # reading needs no token
    with_token = requests.put(
        f"{platform.gateway_url}/api/v1/me/email",
        json={"password": PASSWORD, "new_email": "x@y.cn", "code": "123456"},
        cookies=jar,
        headers={"X-CSRF-Token": cookies["csrf"]},
        timeout=10,
    )
    assert with_token.status_code != 403  # past CSRF: the code is what fails now
