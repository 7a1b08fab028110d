"""Create a service's database if missing and apply its migrations.

Migrations are plain SQL files applied by yoyo-migrations (a maintained
runner with a lock so concurrent starts do not race): first the shared ones
in ``services/common/plumbing/migrations`` (outbox, processed events), then the
service's own ``services/<service>/migrations/NNNN_*.sql``, forward only.

    python -m services.common.plumbing.migrate identity verification ...
    python -m services.common.plumbing.migrate --all
"""

import argparse
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.errors
from yoyo import get_backend, read_migrations

from services.common.plumbing.config import load_config

__all__ = [
    "SERVICES_WITH_DB",
    "migration_dirs",
    "ensure_database",
    "migrate",
    "drop_database",
    "service_db_uri",
]

log = logging.getLogger(__name__)

COMMON_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SERVICES_ROOT = COMMON_MIGRATIONS.parents[2]
SERVICES_WITH_DB = ("identity", "verification", "recovery", "registry_sync")


def migration_dirs(service):
    return [str(COMMON_MIGRATIONS), str(SERVICES_ROOT / service / "migrations")]


def service_db_uri(service):
    """The DB_URI the service's own config.yml resolves to (env applied)."""
    return load_config(SERVICES_ROOT / service / "config.yml")["DB_URI"]


def _split(db_uri):
    parts = urlsplit(db_uri)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    return name, admin


@contextmanager
def _admin_cursor(db_uri):
    """An autocommit cursor on the server's ``postgres`` database."""
    conn = psycopg2.connect(_split(db_uri)[1], connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def ensure_database(db_uri):
    """CREATE DATABASE unless it exists; safe to run concurrently."""
    name = _split(db_uri)[0]
    with _admin_cursor(db_uri) as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            try:
                cur.execute(f'CREATE DATABASE "{name}"')
                log.info("created database %s", name)
            except (psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation):
                pass  # another process won the race


def drop_database(db_uri):
    with _admin_cursor(db_uri) as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{_split(db_uri)[0]}" WITH (FORCE)')


def migrate(service, db_uri=None):
    """Apply pending migrations; returns the ids applied."""
    db_uri = db_uri or service_db_uri(service)
    ensure_database(db_uri)
    backend = get_backend(db_uri)
    migrations = read_migrations(*migration_dirs(service))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    ids = [m.id for m in pending]
    backend.connection.close()
    return ids


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="*")
    parser.add_argument("--all", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="[migrate] %(message)s")
    services = SERVICES_WITH_DB if args.all else args.services
    if not services:
        parser.error("name services or use --all")
    for service in services:
        applied = migrate(service)
        print(
            f"[migrate] {service}: {len(applied)} applied "
            f"({', '.join(applied) or 'up to date'})"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
