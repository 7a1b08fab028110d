"""The gateway's session cache: per device, evicted per account."""

from services.gateway.auth import _Cache


def test_eviction_drops_every_token_of_the_account_only():
    cache = _Cache(ttl=60, max_entries=100)
    alice, bob = {"account_id": "a"}, {"account_id": "b"}
    cache.put("t1", "dev-1", alice)
    cache.put("t2", "dev-2", alice)
    cache.put("t3", "dev-3", bob)
    assert cache.get("t1", "dev-1") is alice
    assert cache.get("t1", "dev-2") is None  # another device misses
    assert cache.evict_account("a") == 2
    assert cache.get("t1", "dev-1") is None and cache.get("t2", "dev-2") is None
    assert cache.get("t3", "dev-3") is bob
    assert cache.evict_account("a") == 0


def test_entries_expire_and_the_cache_stays_bounded():
    cache = _Cache(ttl=0, max_entries=2)
    cache.put("t1", "d", {"account_id": "a"})
    assert cache.get("t1", "d") is None  # ttl 0: already stale
    cache = _Cache(ttl=60, max_entries=2)
    for n in range(5):
        cache.put(f"t{n}", "d", {"account_id": f"a{n}"})
    assert cache.get("t4", "d") == {"account_id": "a4"}
    assert len(cache._entries) <= 2


def test_a_revocation_during_authenticate_is_not_undone_by_the_put_after_it():
    """Issue #20 §7: identity answers "valid" while ``sessions_revoked`` is on
    its way; the broadcast evicts, then the in-flight request's put lands —
    it must not cache the now revoked session for a whole TTL."""
    import time

    cache = _Cache(ttl=600, max_entries=100)
    principal = {"account_id": "a1", "session_id": "s1"}
    asked_at = time.monotonic()  # the gateway asks identity...
    cache.evict_account("a1")  # ...the revocation arrives meanwhile...
    assert cache.put("tok", "dev", principal, asked_at) is False  # ...put refused
    assert cache.get("tok", "dev") is None
    # An answer asked for after the revocation is cached as usual.
    assert cache.put("tok2", "dev", principal, time.monotonic()) is True
    assert cache.get("tok2", "dev") == principal
    # Other accounts are untouched by the mark.
    assert cache.put("tok3", "dev", {"account_id": "a2"}, asked_at) is True
