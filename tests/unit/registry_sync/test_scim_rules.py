"""SCIM rules without a broker or database: filters compiled to SQL with
bound values over whitelisted columns, the columns kept for a student, and
name/ID normalisation used in matching."""

import random
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.common.contract.errors import InvalidRequest
from services.common.plumbing.testing import random_resident_id
from services.common.rules.realname import comparable_name, normalise_id
from services.registry_sync import scim
from services.registry_sync.scim_filter import FilterSql, parse_attr_path


def compile_filter(kind, text):
    compiler = FilterSql(kind, scim.STUDENT_URN)
    return compiler.visit(scim.parse_filter(kind, text)), compiler.params


@pytest.mark.parametrize(
    "text, sql, params",
    [
        ('userName eq "A1"', "(lower(user_name) = %(f0)s)", {"f0": "a1"}),
        ('externalId eq "A1"', "(external_id = %(f0)s)", {"f0": "A1"}),
        ('name.familyName co "张"', "(lower(family_name) LIKE %(f0)s)", {"f0": "%张%"}),
        ('userName sw "20_%"', "(lower(user_name) LIKE %(f0)s)", {"f0": "20\\_\\%%"}),
        ('userName ew "9"', "(lower(user_name) LIKE %(f0)s)", {"f0": "%9"}),
        ("displayName pr", "(display_name IS NOT NULL AND display_name <> '')", {}),
        ("active eq true", "(active = %(f0)s)", {"f0": True}),
        (
            'meta.lastModified gt "2026-01-02T03:04:05Z"',
            "(updated_at > %(f0)s)",
            {"f0": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)},
        ),
        (
            f"{scim.STUDENT_URN}:enrollmentYear ge 2024",
            "(enrollment_year >= %(f0)s)",
            {"f0": 2024},
        ),
        (
            'userName eq "a" or (userName eq "b" and not (active eq false))',
            "((lower(user_name) = %(f0)s) OR ((lower(user_name) = %(f1)s) AND "
            "(NOT COALESCE((active = %(f2)s), false))))",
            {"f0": "a", "f1": "b", "f2": False},
        ),
    ],
)
def test_filters_compile_to_bound_sql(text, sql, params):
    assert compile_filter("User", text) == (sql, params)


def test_a_value_never_reaches_the_sql_text():
    hostile = "x'); DROP TABLE students; --"
    sql, params = compile_filter("User", f'userName eq "{hostile}"')
    assert "DROP" not in sql and params == {"f0": hostile.lower()}


@pytest.mark.parametrize(
    "text",
    [
        'nickName eq "x"',  # not published
        'meta.lastModified gt "yesterday"',
        "active gt true",
        'urn:other:schema:Thing:userName eq "x"',
        "userName eq",
    ],
)
def test_unsupported_filters_are_invalid_filter(text):
    with pytest.raises(InvalidRequest) as refused:
        compile_filter("User", text)
    assert refused.value.code == "scim_invalid_filter"
    assert refused.value.extra["scimType"] == "invalidFilter"


def test_groups_filter_on_members_by_value():
    sql, params = compile_filter("Group", 'members[value eq "abc"]')
    assert "EXISTS" in sql and params == {"f0": "abc"}


def test_sort_by_is_whitelisted():
    compiler = FilterSql("User", scim.STUDENT_URN)
    assert compiler.order_by("name.familyName", True) == (
        "lower(family_name) DESC NULLS LAST, id"
    )
    assert compiler.order_by(None, False) == "created_at, id"
    with pytest.raises(InvalidRequest):
        compiler.order_by("password", False)
    with pytest.raises(InvalidRequest):
        compiler.order_by("userName; DROP", False)
    assert parse_attr_path(f"{scim.STUDENT_URN}:grade").attr == "grade"


def student(**extension):
    return scim.parse_resource(
        "User",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", scim.STUDENT_URN],
            "userName": "u1",
            "name": {"familyName": "張", "givenName": "三"},
            scim.STUDENT_URN: extension,
        },
        "create",
    )


def test_student_columns_keep_the_school_words_and_normalise_for_matching():
    columns = scim.student_columns(
        student(idType="resident_id", idNumber="11010519491231002x", grade="七年级"),
        date(2026, 11, 25),
    )
    assert columns["student_number"] == "u1"  # falls back to userName
    assert columns["name_key"] == "张三"  # traditional folded for matching
    assert columns["id_number"] == "11010519491231002x"  # as given, to seal
    assert columns["id_normalised"] == "11010519491231002X"
    assert columns["id_problem"] is None
    assert "idNumber" not in str(columns["doc"])  # never stored in the clear


@pytest.mark.parametrize("user_name", ["", "   ", "\u3000"])
def test_a_blank_user_name_is_refused(user_name):
    resource = student()
    resource.user_name = user_name
    with pytest.raises(InvalidRequest) as caught:
        scim.student_columns(resource, date(2026, 11, 25))
    assert caught.value.code == "scim_invalid_value"
    assert caught.value.extra["scimType"] == "invalidValue"
    # A blank student number falls back to the userName, as an absent one.
    assert (
        scim.student_columns(student(studentNumber=""), date(2026, 11, 25))[
            "student_number"
        ]
        == "u1"
    )


def test_a_flawed_id_number_is_kept_and_named():
    columns = scim.student_columns(
        student(idType="resident_id", idNumber="110105194912310021"),
        date(2026, 11, 25),
    )
    assert columns["id_normalised"] is None
    assert columns["id_problem"] == "id_checksum_invalid"


@pytest.mark.parametrize(
    "one, other",
    [
        ("张三", "張三"),
        ("张 三", "张三"),
        ("阿依古丽·买买提", "阿依古丽•买买提"),
        ("ＺＨＡＮＧ", "zhang"),
    ],
)
def test_names_compare_after_normalisation(one, other):
    assert comparable_name(one) == comparable_name(other)


def test_different_names_stay_different():
    assert comparable_name("张三") != comparable_name("张山")


def test_full_width_id_digits_are_folded():
    checked = normalise_id(
        "resident_id", "１１０１０５１９４９１２３１００２ｘ", date(2026, 1, 1)
    )
    assert checked.number == "11010519491231002X"


_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
    min_size=1,
    max_size=12,
)
_MAYBE = st.none() | _TEXT
_CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
_VALID_ID = random_resident_id(2010, rng=random.Random(7))


@st.composite
def _student_documents(draw):
    document = {"schemas": [_CORE_USER], "userName": draw(_TEXT)}
    name = {
        key: value
        for key in ("formatted", "familyName", "givenName")
        if (value := draw(_MAYBE)) is not None
    }
    if name:
        document["name"] = name
    for key in ("displayName", "externalId"):
        if (value := draw(_MAYBE)) is not None:
            document[key] = value
    if (active := draw(st.none() | st.booleans())) is not None:
        document["active"] = active
    extension = {}
    for key in ("studentNumber", "grade", "className", "department", "status"):
        if (value := draw(_MAYBE)) is not None:
            extension[key] = value
    if draw(st.booleans()):
        extension["enrollmentYear"] = draw(st.integers(1990, 2100))
    id_type = draw(
        st.sampled_from((None, "resident_id", "passport", "hk_macau_permit"))
    )
    if id_type:
        extension["idType"] = id_type
        extension["idNumber"] = draw(st.just(_VALID_ID) | _TEXT)
    if extension:
        document["schemas"].append(scim.STUDENT_URN)
        document[scim.STUDENT_URN] = extension
    return document


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    _student_documents(),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from((timezone.utc, timezone(timedelta(hours=8)))),
)
def test_a_created_students_document_is_already_what_render_answers(
    document, moment, zone
):
    """A create answers the document it built without a second pass through
    the model (``rendered=True``): this holds only while the two agree."""
    try:
        resource = scim.parse_resource("User", document, "create")
    except InvalidRequest:
        assume(False)
    columns = scim.student_columns(resource, date(2026, 12, 6))
    stamp = moment.replace(tzinfo=zone)
    row = {
        **columns,
        "id": uuid.uuid4(),
        "created_at": stamp,
        "updated_at": stamp,
        "version": 1,
    }
    built = scim.student_document(
        row, [], "https://school.example/scim/v2", columns["id_number"]
    )
    assert built == scim.render("User", built)
