import pytest

from services.common.errors import Conflict
from services.identity.domain import (
    PASSPORT_ALPHABET,
    new_passport_id,
    registration_status,
)


def test_passport_ids_are_random_and_unambiguous():
    ids = {new_passport_id() for _ in range(2000)}
    assert len(ids) == 2000
    for passport in list(ids)[:50]:
        assert passport[0] == "P" and len(passport) == 13
        assert set(passport[1:]) <= set(PASSPORT_ALPHABET)


def test_duplicate_id_is_refused_unless_the_user_registers_anyway():
    assert registration_status(None, False) == "active"
    assert registration_status({"id": "x"}, True) == "duplicate_pending"
    with pytest.raises(Conflict) as caught:
        registration_status({"id": "x"}, False)
    assert caught.value.code == "id_already_registered"
    assert caught.value.extra["see"] == "/api/v1/username-recovery"
