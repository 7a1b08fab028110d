"""``to_simplified`` skips OpenCC for text holding no character it would
change: the answer must be OpenCC's own for any text, phrases included
(``沈`` changes only inside phrases such as ``沈沒``)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.rules import realname
from services.common.rules.realname import to_simplified

to_simplified("")  # loads the converter and the characters it changes
CONVERTER, CHANGED = realname._traditional_to_simplified
PHRASE_KEYS = [
    key
    for path, (_, _, entries) in CONVERTER.dict_cache.items()
    if path.endswith("TSPhrases.txt")
    for key, value in entries.items()
    if key != value
]
# Entries whose answer differs in length (several candidates, "干 乾").
RESIZED_KEYS = [
    key
    for _, _, entries in CONVERTER.dict_cache.values()
    for key, value in entries.items()
    if len(key) != len(value)
]
ALPHABET = (
    sorted(CHANGED)[::40]
    + sorted({ch for key in PHRASE_KEYS[::50] for ch in key})
    + list("张王李刘陈杨赵黄周吴伟芳娜秀英敏静丽强磊军洋勇艳杰涛明超沈么有老·")
)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(ALPHABET, max_size=8),
        st.sampled_from(PHRASE_KEYS),
        st.sampled_from(RESIZED_KEYS),
    )
)
def test_the_answer_is_opencc_s_for_any_text(text):
    assert to_simplified(text) == CONVERTER.convert(text)


@pytest.mark.parametrize(
    ("traditional", "simplified"),
    [("沈沒", "沉没"), ("張偉", "张伟"), ("歐陽娜娜", "欧阳娜娜")],
)
def test_traditional_text_is_converted(traditional, simplified):
    assert to_simplified(traditional) == simplified


def test_simplified_names_do_not_reach_the_converter(monkeypatch):
    def refuse(text):
        raise AssertionError(f"converted {text!r}")

    monkeypatch.setattr(CONVERTER, "convert", refuse)
    for name in ("张伟", "王秀英", "李明", "阿依古丽·买买提", "Li Lei"):
        assert to_simplified(name) == name
