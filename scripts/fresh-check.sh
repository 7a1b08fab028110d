#!/usr/bin/env bash
# `make fresh-check`: the README's two commands, tried as a new user would on
# a fresh Debian 12 machine.
#
#   1. debootstrap a Debian 12 `minbase` root under .fresh/ (git-ignored),
#   2. add exactly the README's prerequisites (PREREQUISITES below),
#   3. clone the committed `main` into it with ../shared beside it,
#   4. inside it: `make test`, then `make run` until /health is 200 through
#      the gateway, then Ctrl-C (SIGINT to its process group) and nothing left
#      listening on the gateway's port; then the same for `make cluster`
#      (stopped within 10 s, none of its ports left listening).
#
# The root shares this machine's network (it uses the same package mirrors
# and pip configuration), so the ports its RabbitMQ and PostgreSQL take are
# this machine's: the check stops this machine's RabbitMQ and PostgreSQL while
# it runs and starts them again afterwards — on success, failure or Ctrl-C
# (the EXIT trap). Every process left running inside the root is killed and
# every mount undone before that.
#
# Exit 0 only when both commands did what the README says. Summary lines are
# printed at the end and kept with the full logs in .fresh/.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
SHARED=$(cd "$REPO/.." && pwd)/shared
WORK=${FRESH_DIR:-$REPO/.fresh}
ROOT=$WORK/root
SUITE=bookworm
# The README's "Before the two commands" list: keep the two in step.
PREREQUISITES=(git make python3 python3-venv ca-certificates curl)
HEALTH_URL=http://127.0.0.1:8000/health

log() { printf '[fresh] %s\n' "$*" >&2; }
die() { printf '[fresh] FATAL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mounts need it)"
[ -d "$SHARED" ] || die "no ../shared beside the repository ($SHARED)"
git -C "$REPO" rev-parse --verify -q main >/dev/null || die "no branch main to clone"
if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no)" ]; then
  log "note: uncommitted changes are NOT checked — the root gets the committed main"
fi
command -v debootstrap >/dev/null || {
  log "installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
} || die "cannot install debootstrap"

# The machine's Debian mirror: the first URI its apt sources name.
MIRROR=$( { cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } \
  | grep -E '^(URIs:|deb )' | head -1 \
  | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk '{print $1}')
[ -n "$MIRROR" ] || die "cannot read a Debian mirror from /etc/apt/sources*"

# --------------------------------------------------------------- clean-up
host_pg_was_up=0
host_rabbit_was_up=0
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

kill_root_processes() {
  local pid link killed=1 tries=0
  while [ $killed = 1 ] && [ $tries -lt 10 ]; do
    killed=0; tries=$((tries + 1))
    for pid in /proc/[0-9]*; do
      link=$(readlink "$pid/root" 2>/dev/null) || continue
      case "$link" in "$ROOT"|"$ROOT"/*) kill -9 "${pid#/proc/}" 2>/dev/null && killed=1 ;; esac
    done
    if [ $killed = 1 ]; then sleep 1; fi
  done
  return 0
}

unmount_root() {
  local mount_point
  # Deepest first.
  for mount_point in $(awk -v root="$ROOT" '$2 == root || index($2, root "/") == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$mount_point" 2>/dev/null || true
  done
}

start_host_services() {
  if [ $host_pg_was_up = 1 ] && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    log "starting this machine's PostgreSQL again"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  fi
  if [ $host_rabbit_was_up = 1 ] && ! port_open 5672; then
    log "starting this machine's RabbitMQ again"
    rabbitmq-server -detached >/dev/null 2>&1 || true
    for _ in $(seq 90); do port_open 5672 && break; sleep 1; done
  fi
  [ $host_pg_was_up = 0 ] || pg_isready -q -h 127.0.0.1 -p 5432 || log "WARNING: PostgreSQL did not come back"
  [ $host_rabbit_was_up = 0 ] || port_open 5672 || log "WARNING: RabbitMQ did not come back"
}

# The cluster's bridge and veths (devtools/cluster.py) live in this
# machine's network stack, not in the root: a run cut short leaves them.
remove_cluster_links() {
  local link
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 \
                | grep -E '^sp[0-9]+(br|r[0-9]h)$' || true); do
    ip link del "$link" 2>/dev/null || true
  done
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  kill_root_processes
  unmount_root
  remove_cluster_links
  start_host_services
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------- the root
mkdir -p "$WORK"
kill_root_processes
unmount_root
rm -rf "$ROOT"
TARBALL=$WORK/$SUITE-minbase.tgz
if [ ! -s "$TARBALL" ]; then
  log "downloading Debian 12 ($SUITE) minbase from $MIRROR (cached in $TARBALL)"
  debootstrap --variant=minbase --make-tarball="$TARBALL" "$SUITE" "$WORK/tarball-tmp" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || die "debootstrap --make-tarball failed (see $WORK/debootstrap.log)"
  rm -rf "$WORK/tarball-tmp"
fi
log "building a $SUITE minbase root in $ROOT"
debootstrap --variant=minbase --unpack-tarball="$TARBALL" "$SUITE" "$ROOT" "$MIRROR" \
  >"$WORK/debootstrap.log" 2>&1 || die "debootstrap failed (see $WORK/debootstrap.log)"

# The machine's package mirrors and pip configuration, nothing else.
cp /etc/resolv.conf /etc/hosts "$ROOT/etc/" 2>/dev/null || true
if [ -d /etc/apt/sources.list.d ]; then
  rm -f "$ROOT/etc/apt/sources.list"
  cp /etc/apt/sources.list.d/*.sources "$ROOT/etc/apt/sources.list.d/" 2>/dev/null || true
fi
if [ -f /etc/apt/sources.list ]; then cp /etc/apt/sources.list "$ROOT/etc/apt/"; fi
cp /etc/apt/apt.conf.d/99* "$ROOT/etc/apt/apt.conf.d/" 2>/dev/null || true
if [ -f /etc/pip.conf ]; then cp /etc/pip.conf "$ROOT/etc/"; fi
if [ -d /etc/xdg/pip ]; then mkdir -p "$ROOT/etc/xdg" && cp -r /etc/xdg/pip "$ROOT/etc/xdg/"; fi

mount -t proc proc "$ROOT/proc"
mount -t sysfs sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount -t devpts devpts "$ROOT/dev/pts" -o newinstance,ptmxmode=0666 2>/dev/null || mount --bind /dev/pts "$ROOT/dev/pts"
mount -t tmpfs shm "$ROOT/dev/shm"
# pip's configuration names local wheel folders: they come along, read-only.
for folder in /opt/wheels /opt/pypi /opt/pypi-more; do
  [ -d "$folder" ] || continue
  mkdir -p "$ROOT$folder"
  mount --bind "$folder" "$ROOT$folder" && mount -o remount,bind,ro "$ROOT$folder"
done

in_root() {
  env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    ${PIP_DEFAULT_TIMEOUT:+PIP_DEFAULT_TIMEOUT=$PIP_DEFAULT_TIMEOUT} \
    ${PIP_FIND_LINKS:+PIP_FIND_LINKS=$PIP_FIND_LINKS} \
    ${PIP_CERT:+PIP_CERT=$PIP_CERT} \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    chroot "$ROOT" "$@"
}

log "adding the README's prerequisites: ${PREREQUISITES[*]}"
in_root apt-get update -qq >"$WORK/prerequisites.log" 2>&1 || die "apt-get update in the root failed"
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PREREQUISITES[@]}" \
  >>"$WORK/prerequisites.log" 2>&1 || die "installing the prerequisites failed (see $WORK/prerequisites.log)"

# The machine's local certificate authorities (a network that inspects TLS
# to the registries needs them): what the machine trusts, the root trusts.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  in_root update-ca-certificates >>"$WORK/prerequisites.log" 2>&1 || die "update-ca-certificates failed"
fi

log "cloning the committed main ($(git -C "$REPO" rev-parse --short main)) with ../shared beside it"
mkdir -p "$ROOT/work"
git clone -q --branch main "$REPO" "$ROOT/work/main"
cp -a "$SHARED" "$ROOT/work/shared"
chmod -R a-w "$ROOT/work/shared"

# ------------------------------------------- free this machine's ports
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  host_pg_was_up=1
  log "stopping this machine's PostgreSQL for the duration"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main stop -m fast
fi
if port_open 5672; then
  host_rabbit_was_up=1
  log "stopping this machine's RabbitMQ for the duration"
  rabbitmqctl shutdown >/dev/null 2>&1 || true
fi
epmd -kill >/dev/null 2>&1 || true
for port in 5432 5672 15672 4369 8000 8025 1025 9101 9102 9103 9104; do
  for _ in $(seq 30); do port_open "$port" || break; sleep 1; done
  if port_open "$port"; then die "port $port is still taken on this machine"; fi
done

# ------------------------------------------------------ the two commands
started=$SECONDS
log "running 'make test' in the root (log: $WORK/test.log)"
test_status=0
in_root bash -c 'cd /work/main && make test' >"$WORK/test.log" 2>&1 || test_status=$?
test_seconds=$((SECONDS - started))

# run_until_healthy TARGET STOP_LIMIT PORTS...: `make TARGET` in the root
# until $HEALTH_URL is 200, then Ctrl-C. Sets $status ("ok" when it stopped
# within STOP_LIMIT seconds leaving none of PORTS listening) and $report.
run_until_healthy() {
  local target=$1 limit=$2; shift 2
  local pid health=000 stopped=-1 stop_started port
  # Job control gives the background job a process group of its own (its
  # leader is $pid: env, chroot and bash exec one another into make), so
  # Ctrl-C can be sent to the whole group as a terminal would.
  set -m
  in_root bash -c "cd /work/main && exec make $target" >"$WORK/$target.log" 2>&1 &
  pid=$!
  set +m
  for _ in $(seq 400); do
    health=$(curl -s -o /dev/null -w '%{http_code}' "$HEALTH_URL" 2>/dev/null || true)
    [ "$health" = 200 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if [ "$health" = 200 ]; then
    stop_started=$SECONDS
    kill -INT -- "-$pid" 2>/dev/null || true
    for _ in $(seq $((limit + 5))); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    stopped=$((SECONDS - stop_started))
    status=ok
    if kill -0 "$pid" 2>/dev/null; then
      status="did not stop within $((limit + 5)) s of Ctrl-C"
      kill -KILL -- "-$pid" 2>/dev/null || true
    elif [ "$stopped" -gt "$limit" ]; then
      status="stopped in $stopped s, more than $limit"
    else
      for port in "$@"; do
        if port_open "$port"; then status="stopped, but port $port is still listening"; break; fi
      done
    fi
  else
    status="/health never answered 200 (last: $health)"
    kill -INT -- "-$pid" 2>/dev/null || true
    sleep 10
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  report="$status (health $health; stopped in $stopped s after Ctrl-C)"
}

log "running 'make run' in the root until $HEALTH_URL is 200 (log: $WORK/run.log)"
run_until_healthy run 5 8000 8025 1025
run_status=$status run_report=$report
log "running 'make cluster' in the root until $HEALTH_URL is 200 (log: $WORK/cluster.log)"
run_until_healthy cluster 10 8000 8404 5440 5441 5442 9090 2479 8011 8012
cluster_status=$status cluster_report=$report

# --------------------------------------------------------------- summary
{
  echo "== fresh-check summary ($(date -u +%FT%TZ), main $(git -C "$REPO" rev-parse --short main))"
  echo "root: Debian $(cat "$ROOT/etc/debian_version") minbase + ${PREREQUISITES[*]}"
  echo "make test: exit $test_status in ${test_seconds} s"
  grep -E '^(=+ .*(passed|failed|error).* =+|\[(infra|browser)\] (ok|FATAL|installing|PostgreSQL|RabbitMQ).*)$' "$WORK/test.log" || true
  echo "make run: $run_report"
  echo "make cluster: $cluster_report"
} | tee "$WORK/summary.txt"

[ $test_status = 0 ] || die "make test failed in the fresh root (see $WORK/test.log)"
[ "$run_status" = ok ] || die "make run: $run_status (see $WORK/run.log)"
[ "$cluster_status" = ok ] || die "make cluster: $cluster_status (see $WORK/cluster.log)"
log "passed"
