"""Errors: stable codes, safe to log, and they survive
Nameko's serialisation as the same class."""

import pytest
from nameko.exceptions import deserialize, serialize

import services.common.contract.errors as errors
import services.common.plumbing.rpc  # noqa: F401  (registers the classes with Nameko)


def test_all_names_exist_and_nothing_public_is_missing():
    public = {
        n
        for n in dir(errors)
        if not n.startswith("_")
        and isinstance(getattr(errors, n), type)
        and issubclass(getattr(errors, n), Exception)
    }
    assert public <= set(errors.__all__)
    for name in errors.__all__:
        assert hasattr(errors, name)


@pytest.mark.parametrize("cls", errors.ALL_ERROR_CLASSES)
def test_every_error_class_round_trips_through_nameko(cls):
    original = cls("some_code", {"retry_after": 42})
    rebuilt = deserialize(serialize(original))
    assert type(rebuilt) is cls
    assert rebuilt.code == "some_code" and rebuilt.extra == {"retry_after": 42}


def test_str_is_only_the_code_so_logs_never_carry_the_extras():
    exc = errors.Conflict("id_already_registered", {"id_number": "11010519491231002X"})
    assert str(exc) == "id_already_registered"


def test_find_nul_names_the_first_string_or_key_holding_nul():
    from services.common.contract.errors import find_nul

    assert find_nul({"a": "ok", "b": ["x", {"c": "bad\x00"}]}) == "body.b[1].c"
    assert find_nul({"k\x00": 1}) == "body.<key>"
    assert find_nul({"a": ["fine", 1, None, {"b": "also fine"}]}) is None
    assert find_nul("plain\x00", "payload") == "payload"
