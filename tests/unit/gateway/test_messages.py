"""The zh/en catalogue the gateway renders refusals with (moved here with
the catalogue from tests/unit/common/test_errors.py)."""

import services.common.contract.errors as errors
from services.gateway.messages import MESSAGES, message_for


def test_default_code_and_messages_in_both_languages():
    exc = errors.Throttled()
    assert exc.code == "too_frequent"
    assert message_for(exc.code)[0] == "不能频繁使用该功能，请稍后再试"
    assert message_for(exc.code)[1].startswith("Too many requests")


def test_every_catalogued_code_is_snake_case_with_two_messages():
    for code, (zh, en) in MESSAGES.items():
        assert code == code.lower() and " " not in code
        assert zh and en and zh != en
