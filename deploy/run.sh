#!/bin/sh
# Container entrypoint: wait for the broker and database, migrate the
# service's own database, then hand over to `nameko run`.
set -eu
SERVICE=${1:?usage: run.sh identity|verification|recovery|registry_sync|gateway}
case "$SERVICE" in
  identity|verification|recovery|registry_sync|gateway) ;;
  *) echo "unknown service: $SERVICE" >&2; exit 2 ;;
esac
python - "$SERVICE" <<'PY'
import sys, time, socket
from urllib.parse import urlsplit
from services.common.plumbing.config import load_config
service = sys.argv[1]
config = load_config(f"services/{service}/config.yml")
targets = [urlsplit(config["AMQP_URI"])]
if "DB_URI" in config:
    targets.append(urlsplit(config["DB_URI"]))
for url in targets:
    for _ in range(60):
        try:
            socket.create_connection((url.hostname, url.port), timeout=2).close()
            break
        except OSError:
            time.sleep(1)
    else:
        sys.exit(f"{url.hostname}:{url.port} unreachable")
PY
if [ "$SERVICE" != gateway ]; then
  python -m services.common.plumbing.migrate "$SERVICE"
fi
exec nameko run --config "services/$SERVICE/config.yml" "services.$SERVICE.service"
