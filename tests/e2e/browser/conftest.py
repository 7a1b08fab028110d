"""Browser tier: the web pages in headless Chromium (Debian's, driven by
Playwright through ``executable_path``), against the platform the e2e tier
starts. Tests act as a person: type, click, read the SMS or email from the
capture server, read the page. Screenshots of each page at phone and
desktop size go to ``.artifacts/screenshots`` (not committed).

If Chromium cannot start the tier fails; it never skips."""

import shutil
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SHOTS = ROOT / ".artifacts" / "screenshots"
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 860}
PASSWORD = "a long enough secret"


@pytest.fixture(scope="session")
def chromium():
    import eventlet.patcher
    from playwright.sync_api import sync_playwright

    if eventlet.patcher.is_monkey_patched("thread"):
        pytest.fail(
            "the browser tier runs in its own process without eventlet "
            "(TESTS_WITHOUT_EVENTLET=1, as `make browser-tests` does): "
            "Playwright's driver cannot stop under eventlet's hub",
            pytrace=False,
        )

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    driver = sync_playwright().start()
    try:
        browser = driver.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
    except Exception as exc:  # the tier fails, never skips
        driver.stop()
        pytest.fail(f"Chromium ({executable}) cannot start: {exc}", pytrace=False)
    yield browser
    browser.close()
    driver.stop()


@pytest.fixture
def person(chromium, platform):
    """``person(lang="zh", size=PHONE)``: a fresh browser context (its own
    cookies, like another person's phone) opened on the platform."""
    contexts = []

    def open_as(lang="zh", size=None):
        context = chromium.new_context(
            base_url=platform.gateway_url,
            viewport=size or DESKTOP,
            locale="zh-CN" if lang == "zh" else "en-US",
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        # A refused request is logged by Chromium as a failed resource: that
        # is the API answering; anything else on the console is a fault.
        page.on(
            "console",
            lambda m: (
                page.errors.append(m.text)
                if m.type == "error"
                and not m.text.startswith("Failed to load resource")
                else None
            ),
        )
        if lang == "en":
            page.goto("/?lang=en")
        return page

    yield open_as
    for context in contexts:
        context.close()


@pytest.fixture
def shots(request):
    """``shots(page, name)``: the page at phone and desktop size."""

    def take(page, name):
        SHOTS.mkdir(parents=True, exist_ok=True)
        base = f"{request.node.name}-{name}"
        size = page.viewport_size
        for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            page.set_viewport_size(viewport)
            page.screenshot(path=str(SHOTS / f"{base}-{label}.png"), full_page=True)
        page.set_viewport_size(size)

    return take


def code_in(inbox, to, before):
    return inbox.code(to, before)


def sign_in(page, login, password=PASSWORD, inbox=None, phone=None):
    """Log in through the login page (with the new-device code when asked)."""
    if phone:
        # The register code went to this phone moments ago: the new-device
        # code is sent once its cooldown (1 s on the e2e platform) is over.
        time.sleep(1.1)
    page.goto("/login")
    page.fill("#f-login", login)
    page.fill("#f-password", password)
    before = len(inbox.messages(phone)) if inbox and phone else 0
    page.click("form button.primary")
    # Either in (another page), or asked for the new-device code.
    page.locator(
        "body:not([data-page=login]), #device-code:not([hidden])"
    ).first.wait_for()
    if page.locator("#device-code:not([hidden])").count():
        page.fill("#f-code", inbox.code(phone, before))
        page.click("form button.primary")
        page.locator("body:not([data-page=login])").wait_for()
