"""Registering, logging in, my account, finding a username and resetting a
password — in a browser, as a person would."""

import re
import time
import uuid

import pytest
from playwright.sync_api import expect

from services.common.plumbing.testing import random_phone, random_resident_id

from .conftest import PASSWORD, PHONE, sign_in


def test_register_by_phone_then_log_in_and_see_my_account(person, inbox, shots):
    page = person(size=PHONE)
    page.goto("/register")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    phone = random_phone()
    page.fill("#f-phone", phone)
    before = len(inbox.messages(phone))
    page.click("button[data-code-purpose=register]")
    page.wait_for_selector("#s-phone:has-text('验证码已发送至')")
    assert page.is_disabled("button[data-code-purpose=register]")  # counting down
    page.fill("#f-code", inbox.code(phone, before))
    page.fill("#f-password", PASSWORD)
    page.fill("#f-name", "陈小春")
    page.fill("#f-id_number", "123")  # a bad ID number first
    page.click("form button.primary")
    error = page.locator("#e-id_number")
    expect(error).not_to_be_empty()
    assert re.search(r"[\u4e00-\u9fff]", error.inner_text()), error.inner_text()
    assert page.get_attribute("#f-id_number", "aria-invalid") == "true"
    shots(page, "register-refused")
    page.fill("#f-id_number", random_resident_id())
    page.click("form button.primary")
    page.wait_for_selector("#registered:not([hidden])")
    passport = page.inner_text("#passport-id")
    assert re.fullmatch(r"P[A-Z0-9]{12}", passport)
    shots(page, "registered")

    sign_in(page, phone)  # the registering browser is a known device
    page.wait_for_url(re.compile(r".*/account$"))
    page.wait_for_selector("dd[data-field=phone_masked]:has-text('****')")
    assert page.inner_text("dd[data-field=passport_id]") == passport
    assert (
        page.inner_text("dd[data-field=phone_masked]")
        == phone[:3] + "****" + phone[-4:]
    )
    shots(page, "account")
    assert not page.errors, page.errors


def test_log_in_from_a_new_device_in_english(person, inbox, student, shots):
    who = student(name="刘备")
    page = person(lang="en")
    page.goto("/login")
    assert page.locator("html").get_attribute("lang") == "en"
    page.fill("#f-login", who["phone"])
    page.fill("#f-password", "a wrong password")
    page.click("form button.primary")
    expect(page.locator(".form-error, #e-login")).not_to_have_count(0)
    expect(page.locator("#e-login")).to_contain_text(
        "password"
    )  # English, from the code
    assert not re.search(r"[\u4e00-\u9fff]", page.inner_text("#e-login"))
    page.fill("#f-password", PASSWORD)
    time.sleep(1.1)  # past the register code's cooldown (1 s here)
    before = len(inbox.messages(who["phone"]))
    page.click("form button.primary")
    expect(page.locator("#device-code")).to_be_visible()
    assert (
        page.inner_text("#device-phone")
        == who["phone"][:3] + "****" + who["phone"][-4:]
    )
    shots(page, "device-code")
    page.fill("#f-code", inbox.code(who["phone"], before))
    page.click("form button.primary")
    page.wait_for_url(re.compile(r".*/account$"))
    expect(page.locator("dd[data-field=name]")).to_have_text("刘备")
    # Cookies: the session is HttpOnly; its CSRF companion is not.
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["sid"]["httpOnly"] and cookies["sid"]["sameSite"] == "Lax"
    assert not cookies["csrf"]["httpOnly"]
    page.click("#logout")
    page.wait_for_url(re.compile(r".*/$"))
    assert "sid" not in {c["name"] for c in page.context.cookies() if c["value"]}
    assert not page.errors, page.errors


def test_register_by_student_number_with_the_guardian_code(person, inbox, shots):
    page = person(size=PHONE)
    page.goto("/register/student")
    guardian = random_phone("139")
    page.fill("#f-school_code", "BJ101")
    page.fill("#f-student_number", "K" + str(uuid.uuid4().int)[:8])
    page.fill("#f-name", "小明")
    page.fill("#f-guardian_phone", guardian)
    before = len(inbox.messages(guardian))
    page.click("button[data-code-purpose=guardian_check]")
    page.fill("#f-code", inbox.code(guardian, before))
    page.fill("#f-password", PASSWORD)
    page.click("form button.primary")
    expect(page.locator("#registered")).to_be_visible()
    assert re.fullmatch(r"P[A-Z0-9]{12}", page.inner_text("#passport-id"))
    shots(page, "registered")


def test_find_my_username_with_the_captcha(person, inbox, student, shots):
    who = student(name="关羽", login=False)
    page = person()
    page.goto("/username")
    expect(page.locator("#captcha-image")).to_have_attribute(
        "src", re.compile("^data:image/png")
    )
    shots(page, "captcha")
    page.fill("#f-id_number", who["id_number"])
    page.fill("#f-name", "关羽")
    first_id = page.input_value("#captcha-id")
    page.fill("#f-captcha_answer", "WRONG")
    page.click("form button.primary")
    expect(page.locator("#e-captcha_answer")).not_to_be_empty()
    # A refused answer brings a new picture.
    expect(page.locator("#captcha-id")).not_to_have_value(first_id)
    captcha_id = page.input_value("#captcha-id")
    page.fill("#f-captcha_answer", inbox.captcha(captcha_id))
    page.click("form button.primary")
    expect(page.locator("#login-names")).to_contain_text(
        who["phone"][:3] + "****" + who["phone"][-4:]
    )
    shots(page, "login-names")


def test_reset_my_password_by_sms(person, inbox, student, shots):
    who = student(name="张飞", email=f"zf{uuid.uuid4().hex[:6]}@x.cn", login=False)
    page = person()
    page.goto("/reset-password")
    page.fill("#f-login", who["email"])
    page.click("#methods-form button.primary")
    expect(page.locator("#reset-step-2")).to_be_visible()
    expect(page.locator("#reset-methods")).to_contain_text(who["phone"][-4:])
    page.check("#method-sms")
    time.sleep(1.2)  # past the register code's 1 s cooldown
    before = len(inbox.messages(who["phone"]))
    page.click("button[data-code-api=reset]")
    page.fill("#f-code", inbox.code(who["phone"], before))
    page.fill("#f-new_password", "a fresh password 99")
    page.click("#reset-form button.primary")
    expect(page.locator("#reset-done")).to_be_visible()
    shots(page, "reset-done")
    sign_in(page, who["phone"], "a fresh password 99", inbox, who["phone"])
    expect(page.locator("dd[data-field=name]")).to_have_text("张飞")


def test_my_account_changes_email_and_shows_what_is_locked(
    person, inbox, student, shots
):
    who = student(name="孔明")
    page = person()
    sign_in(page, who["phone"], inbox=inbox, phone=who["phone"])
    expect(page.locator("li[data-permission=name]")).to_contain_text("可修改")
    expect(page.locator("#unmet")).to_have_count(1)
    address = f"km{uuid.uuid4().hex[:6]}@school.edu.cn"
    form = page.locator("form[data-api='PUT /api/v1/me/email']")
    form.locator("input[name=password]").fill("a wrong one")
    form.locator("input[name=new_email]").fill(address)
    before = len(inbox.messages(address))
    form.locator("button[data-code-purpose=change_email]").click()
    form.locator("input[name=code]").fill(inbox.code(address, before))
    form.locator("button.primary").click()
    expect(form.locator("[data-error-for=password]")).to_contain_text("密码")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("button.primary").click()
    expect(page.locator("dd[data-field=email_masked]")).to_have_text(
        address[0] + "***@school.edu.cn"
    )
    shots(page, "account-email")
    assert not page.errors, page.errors


@pytest.mark.parametrize(
    "hostile",
    [
        "/%5Cevil.example",
        "//evil.example",
        "/%09/evil.example",
        "https:evil.example",
        "javascript:alert(1)",
    ],  # fmt: skip
)
def test_login_never_redirects_off_site(person, student, platform, hostile):
    """Attack (issue #20 §7): a link to /login?next=<another site> sends the
    student there after a real login (phishing the next page)."""
    who = student(name="孙权")
    page = person()
    # A device this account has seen: no device code in the way.
    page.context.add_cookies(
        [{"name": "did", "value": who["device"], "url": platform.gateway_url}]
    )
    page.goto(f"/login?next={hostile}")
    page.fill("#f-login", who["phone"])
    page.fill("#f-password", PASSWORD)
    page.click("form button.primary")
    page.wait_for_url(re.compile(r".*/account$"))
    assert page.url.startswith(platform.gateway_url), page.url


def test_login_follows_a_same_site_next(person, student, platform):
    who = student(name="周瑜")
    page = person()
    page.context.add_cookies(
        [{"name": "did", "value": who["device"], "url": platform.gateway_url}]
    )
    page.goto("/login?next=/inbox")
    page.fill("#f-login", who["phone"])
    page.fill("#f-password", PASSWORD)
    page.click("form button.primary")
    page.wait_for_url(re.compile(r".*/inbox$"))
