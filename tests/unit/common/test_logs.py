"""Log masking: ID numbers, phones and emails never appear whole in a log line."""

import json
import logging

from hypothesis import given
from hypothesis import strategies as st

from services.common.plumbing.context import bind_request_id
from services.common.plumbing.logs import (
    JsonFormatter,
    mask_email,
    mask_id_number,
    mask_phone,
    mask_text,
)


def test_masks_examples_from_the_product_rules():
    assert mask_id_number("11010519491231002X") == "110***********002X"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+8613812345678") == "138****5678"
    assert mask_email("zhang.san@example.com") == "z***@example.com"


def test_mask_text_finds_personal_data_in_free_text():
    text = "login 13812345678 id 11010519491231002X mail li.si@school.edu.cn old 110105491231002"
    masked = mask_text(text)
    assert "13812345678" not in masked and "138****5678" in masked
    assert "11010519491231002X" not in masked and "110***********002X" in masked
    assert "li.si@school.edu.cn" not in masked and "l***@school.edu.cn" in masked
    assert "110105491231002" not in masked


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_no_mainland_mobile_survives_masking(phone):
    assert phone not in mask_text(f"user {phone} asked")


@given(st.from_regex(r"[1-9][0-9]{16}[0-9X]", fullmatch=True))
def test_no_18_character_id_survives_masking(id_number):
    masked = mask_text(f"id={id_number};")
    assert id_number not in masked
    assert masked.startswith("id=" + id_number[:3]) and id_number[-4:] in masked


def test_json_formatter_carries_request_id_and_masks():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "phone %s refused", ("13812345678",), None
    )
    bind_request_id("req-1")
    try:
        line = json.loads(JsonFormatter(service="identity").format(record))
    finally:
        bind_request_id(None)
    assert line["request_id"] == "req-1"
    assert line["service"] == "identity"
    assert line["msg"] == "phone 138****5678 refused"
