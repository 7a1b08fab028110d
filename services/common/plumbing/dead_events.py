"""Ops: list and replay the events a service's handlers parked.

    python -m services.common.plumbing.dead_events identity list
    python -m services.common.plumbing.dead_events identity replay 17 18
    python -m services.common.plumbing.dead_events identity replay --all

A parked event is published again to the one queue of the handler that
parked it (through the default exchange, so no other handler sees it twice),
persistent and with publisher confirms; its failure count starts over, and
the row is marked replayed. Handlers are idempotent, so replaying an event
that was in fact handled does nothing. The database and broker are the
service's own (its config.yml, environment applied); ``--db-uri`` and
``--amqp-uri`` override them.
"""

import argparse
import json
import sys

import psycopg2
import psycopg2.extras
from kombu import Connection, Exchange, Producer

from services.common.plumbing.config import load_config
from services.common.plumbing.migrate import SERVICES_ROOT, SERVICES_WITH_DB

__all__ = ["list_parked", "replay", "main"]

LIST_SQL = """
SELECT id, handler, queue, source, event_type, event_id, reason, error, attempts,
       parked_at, replayed_at
  FROM dead_events
 WHERE %(all)s OR replayed_at IS NULL
 ORDER BY id
"""
TAKE_SQL = """
SELECT id, handler, queue, event_id, body FROM dead_events
 WHERE (id = ANY(%(ids)s) OR %(every)s) AND replayed_at IS NULL
 ORDER BY id
   FOR UPDATE
"""
FORGET_FAILURES_SQL = (
    "DELETE FROM event_failures WHERE handler = %(handler)s AND event_id = %(event_id)s"
)
MARK_REPLAYED_SQL = "UPDATE dead_events SET replayed_at = now() WHERE id = %(id)s"


def list_parked(db_uri, include_replayed=False):
    with psycopg2.connect(db_uri) as conn:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(LIST_SQL, {"all": include_replayed})
            return cur.fetchall()


def replay(db_uri, amqp_uri, ids=(), every=False):
    """Publish the parked events again; returns the ids replayed."""
    replayed = []
    conn = psycopg2.connect(db_uri)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(TAKE_SQL, {"ids": list(ids), "every": every})
            rows = cur.fetchall()
            with Connection(amqp_uri) as amqp:
                channel = amqp.channel()
                channel.confirm_select()
                producer = Producer(channel, exchange=Exchange(""))
                for row in rows:
                    producer.publish(
                        row["body"],
                        routing_key=row["queue"],
                        serializer="json",
                        delivery_mode=2,
                        mandatory=True,
                    )
                    if row["event_id"]:
                        cur.execute(
                            FORGET_FAILURES_SQL,
                            {"handler": row["handler"], "event_id": row["event_id"]},
                        )
                    cur.execute(MARK_REPLAYED_SQL, {"id": row["id"]})
                    replayed.append(row["id"])
        conn.commit()
    finally:
        conn.close()
    return replayed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("service", choices=SERVICES_WITH_DB)
    parser.add_argument("command", choices=("list", "replay"))
    parser.add_argument("ids", nargs="*", type=int)
    parser.add_argument("--all", action="store_true", help="every waiting event")
    parser.add_argument("--db-uri")
    parser.add_argument("--amqp-uri")
    args = parser.parse_args(argv)
    config = load_config(SERVICES_ROOT / args.service / "config.yml")
    db_uri = args.db_uri or config["DB_URI"]
    if args.command == "list":
        for row in list_parked(db_uri, include_replayed=args.all):
            print(json.dumps(row, default=str, ensure_ascii=False))
        return 0
    if not args.ids and not args.all:
        parser.error("replay needs event ids or --all")
    done = replay(db_uri, args.amqp_uri or config["AMQP_URI"], args.ids, args.all)
    print(f"replayed {len(done)}: {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
