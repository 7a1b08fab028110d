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
