#!/usr/bin/env bash
# The SMS gateway tier needs Kannel (Debian's `kannel`: bearerbox talks SMPP
# to the SMSC, smsbox takes HTTP sendsms and calls each message's dlr-url).
# The tests and `make run SMS_GATEWAY=kannel` run it on their own ports with
# their own configuration (devtools/kannel.py): the package's own service is
# never used. Installs it when absent; fails loudly (exit 1) when it cannot.
set -euo pipefail

log() { printf '[kannel] %s\n' "$*" >&2; }
die() { printf '[kannel] FATAL: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x /usr/sbin/bearerbox ] || [ ! -x /usr/sbin/smsbox ]; then
  command -v apt-get >/dev/null || die "apt-get not found; install kannel yourself"
  log "installing kannel from Debian's packages"
  as_root apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq kannel >/dev/null \
    || die "apt-get install kannel failed"
fi
[ -x /usr/sbin/bearerbox ] && [ -x /usr/sbin/smsbox ] || die "bearerbox/smsbox still missing"
# The package may have started its own boxes (an init system that runs
# postinst scripts' starts): they would hold Kannel's default ports only,
# which this project never uses, so they are left alone.
log "kannel ready: $(dpkg-query -W -f='${Version}' kannel 2>/dev/null || echo unknown)"
