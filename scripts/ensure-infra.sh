#!/usr/bin/env bash
# Make sure PostgreSQL and RabbitMQ answer on this machine: check, start if
# installed, install from Debian packages if absent. Fails loudly (exit 1)
# when either cannot be brought up; it never skips.
set -euo pipefail

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PG_PASSWORD=${PG_PASSWORD:-postgres}
RABBIT_PORT=${RABBIT_PORT:-5672}
RABBIT_MGMT_PORT=${RABBIT_MGMT_PORT:-15672}

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] FATAL: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; install $* yourself"
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq || die "apt-get update failed"; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null \
    || die "apt-get install $* failed"
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for() {  # wait_for SECONDS CMD...
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 1
  done
}

# ---------------------------------------------------------------- PostgreSQL
pg_ready() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; }

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null && ! command -v pg_isready >/dev/null; then
    log "PostgreSQL not installed: installing Debian's postgresql"
    apt_install postgresql
  fi
  if ! pg_ready; then
    log "PostgreSQL not answering on $PGHOST:$PGPORT: starting it"
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
    [ -n "$version" ] || die "no PostgreSQL cluster under /etc/postgresql"
    if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
      as_root pg_createcluster "$version" main >/dev/null || die "pg_createcluster failed"
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for 30 pg_ready || die "PostgreSQL did not come up on $PGHOST:$PGPORT"
  fi
  # The services connect over TCP as postgres/$PG_PASSWORD. Trust auth ignores
  # the password; a fresh Debian install (scram) needs it set once.
  if ! PGPASSWORD=$PG_PASSWORD psql -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    log "setting the postgres role's password for TCP logins"
    as_root runuser -u postgres -- psql -p "$PGPORT" -qc "ALTER USER postgres PASSWORD '$PG_PASSWORD'" >/dev/null \
      || die "cannot set the postgres password"
    PGPASSWORD=$PG_PASSWORD psql -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null \
      || die "cannot log in to PostgreSQL as postgres over TCP"
  fi
  log "PostgreSQL ready on $PGHOST:$PGPORT"
}

# ------------------------------------------------------------------ RabbitMQ
rabbit_ready() { port_open 127.0.0.1 "$RABBIT_PORT"; }
mgmt_ready() {
  curl -fsS -u guest:guest "http://127.0.0.1:$RABBIT_MGMT_PORT/api/overview" >/dev/null 2>&1
}

ensure_rabbitmq() {
  if ! command -v rabbitmq-server >/dev/null; then
    log "RabbitMQ not installed: installing Debian's rabbitmq-server"
    apt_install rabbitmq-server
  fi
  if ! rabbit_ready; then
    log "RabbitMQ not answering on 127.0.0.1:$RABBIT_PORT: starting it"
    as_root rabbitmq-server -detached >/dev/null 2>&1 || true
    wait_for 90 rabbit_ready || die "RabbitMQ did not come up on port $RABBIT_PORT"
  fi
  # Nameko's rabbit_config test fixture makes a throw-away vhost per test
  # through the management API; the plugin ships with the server (offline).
  if ! mgmt_ready; then
    log "enabling rabbitmq_management"
    as_root rabbitmq-plugins enable rabbitmq_management >/dev/null || die "cannot enable rabbitmq_management"
    wait_for 60 mgmt_ready || die "RabbitMQ management API not answering on $RABBIT_MGMT_PORT"
  fi
  log "RabbitMQ ready on 127.0.0.1:$RABBIT_PORT (management :$RABBIT_MGMT_PORT)"
}

command -v curl >/dev/null || apt_install curl
ensure_postgres
ensure_rabbitmq
