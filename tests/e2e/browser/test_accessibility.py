"""Pages usable by everyone (issue #25 §2): axe-core (the npm package's
build, as ``axe-playwright-python`` ships it, injected by Playwright) audits
every page — public, signed in, the vouch page, the school admin's and the
reviewer's, the error pages — at phone and desktop width, in Chinese and
English, and fails on any WCAG 2.0/2.1/2.2 A or AA violation; and the main
flows are walked with the keyboard alone (visible focus, no trap, errors
and code status announced)."""

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from .conftest import DESKTOP, PHONE, sign_in
from .test_pages_recovery import to_share_link

AXE = Axe()
WCAG_A_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
PUBLIC = (
    "/",
    "/login",
    "/register",
    "/register/student",
    "/username",
    "/reset-password",
    "/forgot-phone",
    "/no/such/page",
    "/not-me/not-a-token",
    "/duplicate-id/not-me/not-a-token",
    "/v/not-a-token",
)
SIGNED_IN = ("/account", "/registry", "/duplicate-id", "/inbox")


def violations(page):
    results = AXE.run(
        page, options={"runOnly": {"type": "tag", "values": WCAG_A_AA}}
    ).response
    assert results.get("testEngine", {}).get("name") == "axe-core"
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes'][0]['target']}"
        for v in results["violations"]
    ]


def audit(page, paths, found):
    """Each path at both widths in both languages; what axe found, by place."""
    for lang in ("zh", "en"):
        page.goto(f"/?lang={lang}")
        for size in (PHONE, DESKTOP):
            page.set_viewport_size(size)
            for path in paths:
                page.goto(path)
                page.wait_for_load_state("networkidle")
                for problem in violations(page):
                    found.append(f"{lang} {size['width']}px {path}: {problem}")


def test_axe_finds_no_wcag_a_or_aa_violation_on_any_page(
    person, inbox, api, school, enrolled, student, internal_auth
):
    code, _ = school
    requester = enrolled(school, name="诸葛亮", aged=False)
    classmate = enrolled(school, name="赵云")
    share_page = person()
    share_url, _ = to_share_link(share_page, inbox, requester)
    found = []

    audit(person(), PUBLIC, found)
    # The share page at its last step (the link, the QR code, the progress).
    for problem in violations(share_page):
        found.append(f"forgot-phone step 3: {problem}")

    mate = person()
    sign_in(mate, classmate["phone"], inbox=inbox, phone=classmate["phone"])
    audit(mate, (*SIGNED_IN, share_url), found)

    staff = student(name="鲁肃", login=False)
    granted = api.put(
        f"/api/v1/internal/accounts/{staff['account_id']}/roles",
        json={
            "roles": [
                {"role": "school_admin", "school_code": code},
                {"role": "reviewer"},
            ]
        },
        headers=internal_auth,
    )
    assert granted.status_code == 200, granted.text
    desk = person()
    sign_in(desk, staff["phone"], inbox=inbox, phone=staff["phone"])
    audit(desk, (f"/admin/schools/{code}/unmatched", "/admin/reviews"), found)
    assert found == []


def focus_trail(page, presses=40):
    """Tab ``presses`` times: each focused element's id (or tag) and whether
    its focus is visible (an outline or a box shadow drawn)."""
    trail = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        trail.append(
            page.evaluate(
                """() => {
                const el = document.activeElement;
                if (!el || el === document.body) return ["body", true];
                const style = getComputedStyle(el);
                const drawn = (style.outlineStyle !== "none" &&
                               parseFloat(style.outlineWidth) > 0) ||
                              style.boxShadow !== "none";
                return [el.id || el.tagName.toLowerCase() + ":" +
                        (el.getAttribute("href") || el.textContent.trim()), drawn];
            }"""
            )
        )
    return trail


def tab_to(page, selector, limit=40):
    """Press Tab until the focused element matches ``selector``."""
    for _ in range(limit):
        if page.evaluate(
            "s => !!document.activeElement && document.activeElement.matches(s)",
            selector,
        ):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} never took the focus by Tab")


def test_focus_is_visible_and_never_trapped_on_the_flow_pages(person):
    page = person(size=PHONE)
    for path in ("/register", "/login", "/forgot-phone", "/v/not-a-token"):
        page.goto(path)
        trail = focus_trail(page)
        hidden = [place for place, drawn in trail if not drawn]
        assert hidden == [], (path, hidden)
        places = [place for place, _ in trail]
        # Not trapped: the walk leaves every element it reached (more than
        # one place, and it comes round again to where it started).
        assert len(set(places)) > 3, (path, places)
        first = places[0]
        assert first in places[1:], (path, places)


def test_register_then_log_in_with_the_keyboard_alone(person, inbox):
    from services.common.plumbing.testing import random_phone, random_resident_id

    page = person(size=PHONE)
    page.goto("/register")
    phone = random_phone()
    # A wrong submit first: the error is tied to its field and announced.
    tab_to(page, "#f-phone")
    page.keyboard.type("12")
    tab_to(page, "#f-password")
    page.keyboard.press("Enter")
    error = page.locator("#e-phone")
    expect(error).not_to_be_empty()
    assert error.get_attribute("role") == "alert"
    described = page.get_attribute("#f-phone", "aria-describedby")
    assert "e-phone" in described.split()

    page.goto("/register")
    tab_to(page, "#f-phone")
    page.keyboard.type(phone)
    before = len(inbox.messages(phone))
    tab_to(page, "button[data-code-purpose=register]")
    page.keyboard.press("Enter")
    status = page.locator("[data-status-for=phone]")
    assert status.get_attribute("aria-live") == "polite"
    expect(status).not_to_be_empty()  # "sent to 138****…", announced
    code = inbox.code(phone, before)
    fields = {
        "f-code": code,
        "f-password": "a long enough secret",
        "f-name": "张三",
        "f-id_number": random_resident_id(),
    }
    for field, value in fields.items():
        tab_to(page, f"#{field}")
        page.keyboard.type(value)
    page.keyboard.press("Enter")  # submits from the last field
    expect(page.locator("#registered")).to_be_visible()
    assert page.get_attribute("#registered", "role") == "status"
    assert not page.errors, page.errors

    login = person(size=PHONE)
    login.goto("/login")
    tab_to(login, "#f-login")
    login.keyboard.type(phone)
    tab_to(login, "#f-password")
    login.keyboard.type("a long enough secret")
    login.keyboard.press("Enter")
    # In, or asked for the new device's code (a first login here): either
    # way the form was sent from the keyboard.
    login.locator(
        "body:not([data-page=login]), #device-code:not([hidden])"
    ).first.wait_for()
    assert not login.errors, login.errors


def test_forgot_phone_and_vouch_with_the_keyboard_alone(
    person, inbox, school, enrolled
):
    from services.common.plumbing.testing import random_phone

    requester = enrolled(school, name="孙权", aged=False)
    classmate = enrolled(school, name="陆逊")
    page = person(size=PHONE)
    page.goto("/forgot-phone")
    for field, value in (
        ("#f-school_code", requester["school_code"]),
        ("#f-student_number", requester["student_number"]),
        ("#f-name", requester["name"]),
    ):
        tab_to(page, field)
        page.keyboard.type(value)
    page.keyboard.press("Enter")
    expect(page.locator("#fp-step-2")).to_be_visible()
    new_phone = random_phone("139")
    for field, value in (
        ("#f-old_phone", requester["phone"]),
        ("#f-new_phone", new_phone),
    ):
        tab_to(page, field)
        page.keyboard.type(value)
    before = len(inbox.messages(new_phone))
    tab_to(page, "button[data-code-purpose=recover_phone]")
    page.keyboard.press("Enter")
    code = inbox.code(new_phone, before)
    tab_to(page, "#f-code")
    page.keyboard.type(code)
    tab_to(page, "#f-new_password")
    page.keyboard.type("my new password 2026")
    page.keyboard.press("Enter")
    expect(page.locator("#fp-step-3")).to_be_visible()
    share_url = page.input_value("#share-url")

    friend = person(size=PHONE)
    sign_in(friend, classmate["phone"], inbox=inbox, phone=classmate["phone"])
    friend.goto(share_url)
    expect(friend.locator("#vouch-box")).to_be_visible()
    tab_to(friend, "#vouch-form button.primary")
    friend.keyboard.press("Enter")
    expect(friend.locator("#vouch-done")).to_be_visible()
    assert not page.errors and not friend.errors, (page.errors, friend.errors)
