"""Migrations apply cleanly to an empty database, twice is a no-op, and every
SQL statement the stores and plumbing use is valid against the result."""

import importlib
import re
from pathlib import Path

import psycopg2
import pytest

from services.common.plumbing.migrate import SERVICES_WITH_DB, drop_database, migrate
from services.common.plumbing.testing import db_uri, random_ref

ROOT = Path(__file__).resolve().parents[2]
PLUMBING_MODULES = ["services.common.plumbing.db", "services.common.plumbing.outbox"]


def store_modules(service):
    """Every module of the service that holds SQL (``store.py``,
    ``import_store.py``), and the shared throttle SQL where its store mixes
    it in."""
    from services.common.plumbing.throttle_store import ThrottleStore

    folder = ROOT / "services" / service
    names = [f"services.{service}.{p.stem}" for p in sorted(folder.glob("*store.py"))]
    store = importlib.import_module(f"services.{service}.store")
    if any(
        isinstance(cls, type) and issubclass(cls, ThrottleStore)
        for cls in vars(store).values()
    ):
        names.append("services.common.plumbing.throttle_store")
    return names


def sql_constants(module_name):
    module = importlib.import_module(module_name)
    return {
        name: value
        for name, value in vars(module).items()
        if name.endswith("_SQL") and isinstance(value, str)
    }


def as_prepared(sql):
    """psycopg2 placeholders -> $n, so PostgreSQL can PREPARE (and so check) it."""
    names = []

    def number(match):
        key = match.group(1)
        if key not in names:
            names.append(key)
        return f"${names.index(key) + 1}"

    sql = re.sub(r"%\((\w+)\)s", number, sql)
    counter = iter(range(len(names) + 1, 1000))
    return re.sub(r"%s", lambda _: f"${next(counter)}", sql)


@pytest.mark.parametrize("service", SERVICES_WITH_DB)
def test_migrations_apply_to_an_empty_database_and_match_the_store(service):
    uri = db_uri(random_ref(f"mig_{service}_"))
    try:
        applied = migrate(service, uri)
        assert "common_0001_outbox" in applied
        assert migrate(service, uri) == []  # idempotent
        statements = {}
        for module in PLUMBING_MODULES + store_modules(service):
            statements.update(sql_constants(module))
        assert statements, "no SQL constants found"
        conn = psycopg2.connect(uri)
        try:
            with conn.cursor() as cur:
                for index, (name, sql) in enumerate(sorted(statements.items())):
                    try:
                        cur.execute(f"PREPARE stmt_{index} AS {as_prepared(sql)}")
                    except psycopg2.Error as exc:
                        pytest.fail(f"{name} does not match the schema: {exc}")
        finally:
            conn.close()
    finally:
        drop_database(uri)
