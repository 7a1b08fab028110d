"""Keyed hashes are lookup keys stored in every service's database: their
value must never change with how they are computed."""

import json

from services.common.plumbing.crypto import Sealer, keyed_hash


def test_keyed_hash_is_hmac_sha256_of_the_unit_separated_parts():
    # RFC 4231, test case 2.
    assert keyed_hash(b"Jefe", "what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    assert keyed_hash(b"Jefe", "what do ya", "want") == keyed_hash(
        b"Jefe", "what do ya\x1fwant"
    )


def test_a_sealed_value_is_its_json_and_opens_to_itself():
    sealer = Sealer(b"k" * 32, b"test")
    for value in ("11010519491231002X", "张三", {"phone": "+8613800138000"}):
        sealed = sealer.seal(value)
        assert sealer.open(sealed) == value
        plain = sealer._aead.decrypt(sealed[:12], sealed[12:], b"test")
        assert plain == json.dumps(value, ensure_ascii=False).encode()
