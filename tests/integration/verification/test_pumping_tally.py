"""The pumping watch counts its window in SQL (``window_tally``, one row per
busy key) and reads code by code only what SQL cannot key
(``window_unkeyed``). Merged, the two equal ``pumping.tally`` over every
code of the window, on real PostgreSQL: +86 and other countries' segments,
stored networks, codes issued before the network was stored, codes with no
address, verified and delivered codes, and keys whose last suspension ended
inside the window."""

import random
from datetime import datetime, timedelta, timezone

import pytest

from services.verification import pumping

WINDOW = timedelta(minutes=10)

DESTINATIONS = [
    *(f"+86138000{s}" for s in "123"),  # three +86 segments
    "+85291234",  # Hong Kong: the segment is the country
    "+1415555",  # one-digit country code
]
ADDRESSES = [
    "203.0.113.7",
    "203.0.113.200",  # same /24 as the one above
    "198.51.100.9",
    "2001:db8:1:2::5",
    "2001:db8:1:ff::9",  # same /48 as the one above
    "::ffff:198.51.100.77",  # IPv4-mapped: the IPv4 network
    None,  # the request named no address
]


def _insert_codes(store, since, rng, count=400):
    """``count`` SMS codes in and around ``[since, since + WINDOW)``; a third
    without a stored network (issued before it was stored). Returns the
    window's codes as ``pumping.tally`` reads them."""
    in_window = []
    for n in range(count):
        destination = rng.choice(DESTINATIONS) + f"{n:04d}"
        client_ip = rng.choice(ADDRESSES)
        stored_network = rng.random() > 0.33
        issued_at = since + timedelta(seconds=rng.uniform(-60, 660))
        verified, delivered = rng.random() < 0.3, rng.random() < 0.6
        row = store.fetchone(
            "INSERT INTO codes (channel, destination, purpose, code_hash, client_ip,"
            " client_network, quota_day, issued_at, expires_at, used_at)"
            " VALUES ('sms', %s, 'register', 'h', %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                destination,
                client_ip,
                pumping.network_of(client_ip) if stored_network else None,
                issued_at.date(),
                issued_at,
                issued_at + timedelta(minutes=5),
                issued_at if verified else None,
            ),
        )
        if rng.random() >= 0.9:  # some codes have no delivery row
            delivered = False
        else:
            store.execute(
                "INSERT INTO deliveries (code_id, channel, destination, status,"
                " next_attempt_at, created_at, receipt_state)"
                " VALUES (%s, 'sms', %s, 'sent', %s, %s, %s)",
                (
                    row["id"],
                    destination,
                    issued_at,
                    issued_at,
                    "delivered" if delivered else rng.choice(["submitted", None]),
                ),
            )
        if since <= issued_at < since + WINDOW:
            in_window.append(
                {
                    "destination": destination,
                    "client_ip": client_ip,
                    "issued_at": issued_at,
                    "verified": verified,
                    "delivered": delivered,
                }
            )
    store.commit()
    return in_window


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_window_counted_in_sql_equals_the_tally_code_by_code(store, seed):
    rng = random.Random(seed)
    # A window of its own, years away from any other test's codes.
    since = datetime(2031, 1, 1, tzinfo=timezone.utc) + timedelta(days=seed * 7)
    until = since + WINDOW
    codes = _insert_codes(store, since, rng)
    middle = since + timedelta(minutes=5)
    ended = {
        ("segment", "+861380001"): middle,
        ("segment", "+852"): middle,
        ("network", "203.0.113.0/24"): since + timedelta(minutes=2),
        ("network", "2001:db8:1::/48"): middle,
        ("network", "192.0.2.0/24"): middle,  # sent nothing this window
    }

    counted = pumping.merge_counted(
        store.window_tally(since, until, ended, min_volume=1),
        pumping.tally(store.window_unkeyed(since, until), ended),
    )

    expected = pumping.tally(codes, ended)
    assert counted == expected
    assert {scope for scope, _ in expected} == {"segment", "network"}


def test_only_keys_with_the_volume_come_back_from_sql(store):
    rng = random.Random(7)
    since = datetime(2031, 6, 1, tzinfo=timezone.utc)
    codes = _insert_codes(store, since, rng)
    expected = pumping.tally(codes)
    busy = store.window_tally(since, since + WINDOW, {}, min_volume=30)
    assert busy, "the data has busy keys"
    for row in busy:
        assert row["sent"] >= 30
        # a +86 segment is counted in SQL alone: all of its codes
        if row["scope"] == "segment":
            assert row["sent"] == expected[("segment", row["key"])].sent
    quiet = {
        key
        for key, figures in expected.items()
        if key[0] == "segment" and figures.sent < 30 and key[1].startswith("+86")
    }
    assert quiet.isdisjoint((row["scope"], row["key"]) for row in busy)
