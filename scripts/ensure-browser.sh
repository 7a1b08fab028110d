#!/usr/bin/env bash
# The browser tier needs Debian's chromium and a CJK font (so pages and their
# screenshots show Chinese). Installs them when absent; fails loudly (exit 1)
# when it cannot — the tier never skips. Playwright drives this chromium
# through executable_path; `playwright install` (a download) is never used.
set -euo pipefail

log() { printf '[browser] %s\n' "$*" >&2; }
die() { printf '[browser] FATAL: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v chromium >/dev/null || missing+=(chromium)
fc-list 2>/dev/null | grep -i "Noto Sans CJK" >/dev/null || missing+=(fonts-noto-cjk)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} yourself"
  log "installing ${missing[*]} from Debian's packages"
  as_root apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi
command -v chromium >/dev/null || die "chromium is still missing"
chromium --version >/dev/null 2>&1 || die "chromium does not start: $(chromium --version 2>&1 | tail -1)"
log "ok: $(chromium --version 2>/dev/null)"
