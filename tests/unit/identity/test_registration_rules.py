import pytest

from services.common.contract.errors import Conflict
from services.identity.domain import (
    PASSPORT_ALPHABET,
    new_passport_id,
    registration_status,
)

# Characters people confuse when reading an ID aloud or off a screen.
AMBIGUOUS = set("0O1IL")


def test_passport_ids_are_random_and_unambiguous():
    assert not AMBIGUOUS & set(PASSPORT_ALPHABET)
    assert not AMBIGUOUS & set(PASSPORT_ALPHABET.lower())
    ids = {new_passport_id() for _ in range(2000)}
    assert len(ids) == 2000
    for passport in ids:
        assert passport[0] == "P" and len(passport) == 13
        assert not AMBIGUOUS & set(passport[1:]), passport
        assert set(passport[1:]) <= set(PASSPORT_ALPHABET)


def test_duplicate_id_is_refused_unless_the_user_registers_anyway():
    assert registration_status(None, False) == "active"
    assert registration_status({"id": "x"}, True) == "duplicate_pending"
    with pytest.raises(Conflict) as caught:
        registration_status({"id": "x"}, False)
    assert caught.value.code == "id_already_registered"
    assert caught.value.extra["see"] == "/api/v1/username-recovery"
