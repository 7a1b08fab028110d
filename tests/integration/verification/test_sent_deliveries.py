"""Deliveries the provider took, recorded many in one statement (the
delivery queue's group commit), on real PostgreSQL: each gets its own
attempt row and answer time, its code is marked delivered, a provider with
receipts leaves it ``submitted``, and a receipt that overtook the answer
stays."""

from datetime import datetime, timedelta, timezone

AT = datetime(2031, 3, 1, 8, 0, tzinfo=timezone.utc)


def _queued(store, n):
    """A code and its pending delivery; the delivery's id."""
    code = store.fetchone(
        "INSERT INTO codes (channel, destination, purpose, code_hash, quota_day,"
        " issued_at, expires_at) VALUES ('sms', %s, 'register', 'h', %s, %s, %s)"
        " RETURNING id",
        (f"+8613900{n:06d}", AT.date(), AT, AT + timedelta(minutes=5)),
    )
    delivery = store.fetchone(
        "INSERT INTO deliveries (code_id, channel, destination, sealed_message,"
        " next_attempt_at, created_at, lease_until) VALUES (%s, 'sms', %s, 'x', %s,"
        " %s, %s) RETURNING id",
        (code["id"], f"+8613900{n:06d}", AT, AT, AT + timedelta(minutes=1)),
    )
    store.commit()
    return delivery["id"]


def test_many_sent_deliveries_are_recorded_in_one_statement_each_as_it_came(store, sql):
    plain, receipted, overtaken = (_queued(store, n) for n in range(3))
    sql("UPDATE deliveries SET receipt_state = 'delivered' WHERE id = %s", (overtaken,))
    answers = {
        plain: ("http_sms", AT + timedelta(seconds=1), False),
        receipted: ("kannel", AT + timedelta(seconds=2), True),
        overtaken: ("kannel", AT + timedelta(seconds=3), True),
    }

    store.record_sent_many([(id_, *answer) for id_, answer in answers.items()])

    rows = sql(
        "SELECT d.id, d.status, d.finished_at, d.lease_until, d.sealed_message,"
        " d.receipt_state, c.delivered_at, a.provider, a.attempted_at, a.outcome"
        " FROM deliveries d JOIN codes c ON c.id = d.code_id"
        " JOIN delivery_attempts a ON a.delivery_id = d.id WHERE d.id = ANY(%s)",
        (list(answers),),
    )
    assert len(rows) == 3  # one attempt each
    by_id = {row["id"]: row for row in rows}
    for id_, (provider, when, _) in answers.items():
        row = by_id[id_]
        assert (row["status"], row["outcome"], row["provider"]) == (
            "sent",
            "sent",
            provider,
        )
        assert row["finished_at"] == row["delivered_at"] == row["attempted_at"] == when
        assert row["lease_until"] is None and row["sealed_message"] is None
    assert by_id[plain]["receipt_state"] is None
    assert by_id[receipted]["receipt_state"] == "submitted"
    assert by_id[overtaken]["receipt_state"] == "delivered"
