#!/usr/bin/env bash
# What `make cluster` and the cluster fault suite run on: Debian's
# rabbitmq-server, postgresql, patroni, etcd-server, haproxy, prometheus and
# iproute2. Installs whichever is absent; fails loudly (exit 1) when it
# cannot. It starts nothing: devtools/cluster.py runs every part itself,
# on ports of its own, beside this machine's single RabbitMQ and PostgreSQL.
set -euo pipefail

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] FATAL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: the nodes run as the rabbitmq and postgres users"

# command → Debian package
declare -A NEEDED=(
  [/usr/lib/rabbitmq/bin/rabbitmq-server]=rabbitmq-server
  [pg_isready]=postgresql
  [patroni]=patroni
  [etcd]=etcd-server
  [haproxy]=haproxy
  [prometheus]=prometheus
  [promtool]=prometheus
  [ip]=iproute2
  [runuser]=util-linux
  [nsenter]=util-linux
  [setpriv]=util-linux
)
missing=()
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "$cmd" ] || missing+=("${NEEDED[$cmd]}")
done
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then missing+=(postgresql); fi
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing Debian packages: ${missing[*]}"
  command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} yourself"
  apt-get update -qq || die "apt-get update failed"
  # The packages' own services are not wanted (the cluster runs its own
  # parts): a policy-rc.d keeps their postinst from starting them.
  guard=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; guard=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { [ $guard = 1 ] && rm -f /usr/sbin/policy-rc.d; die "apt-get install ${missing[*]} failed"; }
  if [ $guard = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "$cmd" ] || die "$cmd still missing after installing ${NEEDED[$cmd]}"
done
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || die "no PostgreSQL server binaries under /usr/lib/postgresql"
id rabbitmq >/dev/null 2>&1 || die "no rabbitmq user (rabbitmq-server's package makes it)"
id postgres >/dev/null 2>&1 || die "no postgres user (postgresql's package makes it)"
# The nodes talk Erlang distribution with the rabbitmq user's cookie; a
# package that was never started has none yet.
if [ ! -s /var/lib/rabbitmq/.erlang.cookie ]; then
  head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20 > /var/lib/rabbitmq/.erlang.cookie
  chown rabbitmq:rabbitmq /var/lib/rabbitmq/.erlang.cookie; chmod 400 /var/lib/rabbitmq/.erlang.cookie
fi
log "packages present: rabbitmq-server, postgresql, patroni, etcd, haproxy, prometheus, iproute2"
