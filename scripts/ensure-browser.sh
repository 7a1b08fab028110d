#!/usr/bin/env bash
# The browser tier needs Debian's chromium, a CJK font (so pages and their
# screenshots show Chinese) and the shared libraries of Playwright's bundled
# node driver that Debian's chromium does not pull in (libatomic1: without it
# the driver dies with "libatomic.so.1: cannot open shared object file" on a
# minimal Debian). Installs what is absent, then proves the whole chain works
# by launching chromium through Playwright; fails loudly (exit 1) when it
# cannot — the tier never skips. Playwright drives this chromium through
# executable_path; `playwright install` (a download) is never used.
#
# PY names the project's Python (the Makefile passes the venv's); the launch
# check needs the playwright package installed there.
set -euo pipefail

PY=${PY:-.venv/bin/python}

log() { printf '[browser] %s\n' "$*" >&2; }
die() { printf '[browser] FATAL: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
command -v chromium >/dev/null || missing+=(chromium)
fc-list 2>/dev/null | grep -i "Noto Sans CJK" >/dev/null || missing+=(fonts-noto-cjk)
# The Playwright driver's own libraries (see `ldd …/playwright/driver/node`).
for package in libatomic1 libstdc++6 libgcc-s1; do
  installed "$package" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} yourself"
  log "installing ${missing[*]} from Debian's packages"
  as_root apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi
command -v chromium >/dev/null || die "chromium is still missing"
chromium --version >/dev/null 2>&1 || die "chromium does not start: $(chromium --version 2>&1 | tail -1)"

# The driver and the browser together, as the tier launches them.
[ -x "$PY" ] || die "no Python at $PY (run make install first)"
if ! out=$("$PY" - 2>&1 <<'PYCHECK'
import shutil
from playwright.sync_api import sync_playwright

with sync_playwright() as driver:
    browser = driver.chromium.launch(
        executable_path=shutil.which("chromium") or "/usr/bin/chromium",
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    )
    page = browser.new_page()
    page.set_content("<p id=t>学籍 ok</p>")
    assert page.inner_text("#t") == "学籍 ok"
    browser.close()
PYCHECK
); then
  reason=$(printf '%s\n' "$out" | grep -m1 'error while loading shared libraries' || printf '%s\n' "$out" | tail -1)
  die "Playwright cannot drive chromium: $reason"
fi
log "ok: $(chromium --version 2>/dev/null); Playwright $("$PY" -m playwright --version 2>/dev/null) drives it"
