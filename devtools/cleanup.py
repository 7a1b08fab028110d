"""Drop what killed test or benchmark runs left behind: their databases
(``t…_<service>``, ``mig_…``, ``bench…``, ``prof…``) and vhosts (``vh…``).
Run it only when no test run is in progress (``make clean-test-data``)."""

import re

import psycopg2
import requests

from services.common.plumbing.testing import (
    PG_ADMIN_URI,
    TestVhost,
    mgmt_auth,
    mgmt_base,
)

DB_PATTERN = re.compile(
    r"^(t[0-9a-f]{10}|mig_[a-z_]+t[0-9a-f]{10}|bench[0-9a-f]{10}|"
    r"benchp[0-9a-f]{10}|prof[0-9a-f]{10})(_[a-z_]+)?$"
)
VHOST_PATTERN = re.compile(r"^vh[0-9a-f]{10}$")


def main():
    conn = psycopg2.connect(PG_ADMIN_URI)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database")
        names = [row[0] for row in cur.fetchall() if DB_PATTERN.match(row[0])]
        for name in names:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()
    vhosts = [
        v["name"]
        for v in requests.get(
            f"{mgmt_base()}/api/vhosts", auth=mgmt_auth(), timeout=10
        ).json()
        if VHOST_PATTERN.match(v["name"])
    ]
    for name in vhosts:
        TestVhost(name).delete()
    print(f"dropped {len(names)} databases and {len(vhosts)} vhosts")


if __name__ == "__main__":
    main()
