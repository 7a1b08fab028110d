"""Registering, logging in, my account, finding a username and resetting a
password — in a browser, as a person would."""

import re

from playwright.sync_api import expect

from services.common.testing import random_phone, random_resident_id

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
