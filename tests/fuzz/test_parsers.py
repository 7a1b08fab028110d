"""Properties of the pure parsers under arbitrary and near-valid input:
ID numbers, names, OneRoster manifests, rows and packages (seeded from the
real samples in ../shared), SCIM filters and PATCH documents, uploaded
photos. See conftest.py for the budgets."""

import csv
import io
import zipfile
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from services.common.contract.errors import ServiceError
from services.common.rules.realname import (
    check_name,
    comparable_name,
    normalise_id,
    resident_check_char,
)
from services.recovery.photos import PhotoLimits, clean_photo
from services.registry_sync import oneroster, scim

TODAY = date(2026, 12, 2)
ID_TYPES = ("resident_id", "hmt_residence_permit", "passport",
            "foreign_permanent_residence", "other", "bogus")  # fmt: skip
SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "oneroster"


# -- ID numbers -------------------------------------------------------------------
digits = st.text("0123456789", min_size=14, max_size=19)
id_like = st.one_of(
    st.text(max_size=40),
    digits,
    st.builds(lambda d, x: d + x, digits, st.sampled_from(["X", "x", "Ｘ", "", " "])),
    # Full-width digits and spaces, as typed on Chinese keyboards.
    digits.map(lambda d: "".join(chr(ord(c) + 0xFEE0) for c in d)),
    digits.map(lambda d: " ".join([d[:6], d[6:14], d[14:]])),
    st.from_regex(r"[A-Z]{1,2}[0-9]{6,10}", fullmatch=True),
)


@given(st.sampled_from(ID_TYPES), id_like)
def test_an_id_number_is_normalised_or_refused_with_a_code(id_type, raw):
    try:
        checked = normalise_id(id_type, raw, TODAY)
    except ServiceError as refusal:
        assert refusal.code.startswith("id_"), refusal.code
        return
    assert checked.id_type == id_type
    assert checked.number == checked.number.strip().upper()
    # Normalising what was accepted gives the same number (stable lookups).
    assert normalise_id(id_type, checked.number, TODAY).number == checked.number
    if id_type == "resident_id":
        assert len(checked.number) == 18
        assert resident_check_char(checked.number[:17]) == checked.number[17]
        assert checked.birth_date is None or checked.birth_date <= TODAY


# -- names --------------------------------------------------------------------------
name_like = st.one_of(
    st.text(max_size=50),
    st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=6),
    st.lists(
        st.text(st.characters(categories=("Lu", "Ll", "Lo")), min_size=1, max_size=8),
        min_size=1,
        max_size=4,
    ).map(lambda parts: "·".join(parts)),
    st.lists(st.sampled_from("王小明·•・.．學習 \t\u3000ABab"), max_size=12).map(
        "".join
    ),
)


@given(name_like)
def test_a_name_is_accepted_as_is_or_refused_with_a_code(raw):
    try:
        name = check_name(raw)
    except ServiceError as refusal:
        assert refusal.code.startswith("name_"), refusal.code
        return
    assert 2 <= len(name) <= 40 and not any(ch.isspace() for ch in name)
    assert check_name(name) == name  # accepted names are fixed points
    assert comparable_name(name) == comparable_name(comparable_name(name))


@given(name_like)
def test_comparing_names_never_fails(raw):
    assert isinstance(comparable_name(raw), str)


# -- OneRoster --------------------------------------------------------------------
def _sample_files():
    assert SAMPLES.is_dir(), f"{SAMPLES} is missing: ../shared must sit beside the repo"
    return {
        folder.name: {
            path.stem: path.read_text(encoding="utf-8") for path in folder.glob("*.csv")
        }
        for folder in sorted(SAMPLES.iterdir())
        if folder.is_dir()
    }


SAMPLE_SETS = _sample_files()
csv_cell = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "active", "tobedeleted", "student", "2026-09-01",
                     "2026-13-45", "true", "false", "bulk", "delta", "1.1", "1.2",
                     "\"", "a,b", "\r\n", "\x00"]),
)  # fmt: skip


@given(st.text(max_size=400))
def test_a_manifest_of_any_text_is_read_or_refused(text):
    try:
        version, modes = oneroster.parse_manifest(text)
    except oneroster.PackageError as refusal:
        assert refusal.code.startswith(("manifest_", "file_")), refusal.code
        return
    assert version in oneroster.KNOWN_VERSIONS
    assert set(modes) <= set(oneroster.ENTITY_FILES)
    assert set(modes.values()) <= {"bulk", "delta"}


@st.composite
def mutated_package(draw):
    """A real sample package with some cells, lines or headers replaced."""
    name = draw(st.sampled_from(sorted(SAMPLE_SETS)))
    files = dict(SAMPLE_SETS[name])
    for _ in range(draw(st.integers(1, 6))):
        entity = draw(st.sampled_from(sorted(files)))
        rows = list(csv.reader(io.StringIO(files[entity], newline="")))
        if not rows:
            continue
        row_no = draw(st.integers(0, len(rows) - 1))
        how = draw(st.sampled_from(["cell", "drop_cell", "add_cell", "line", "dup"]))
        row = list(rows[row_no])
        if how == "cell" and row:
            row[draw(st.integers(0, len(row) - 1))] = draw(csv_cell)
        elif how == "drop_cell" and row:
            row.pop(draw(st.integers(0, len(row) - 1)))
        elif how == "add_cell":
            row.append(draw(csv_cell))
        elif how == "line":
            row = draw(st.lists(csv_cell, max_size=8))
        rows[row_no] = row
        if how == "dup":
            rows.append(list(rows[row_no]))
        out = io.StringIO()
        csv.writer(out).writerows(rows)
        files[entity] = out.getvalue()
    return files


@given(mutated_package())
def test_a_damaged_package_keeps_its_good_rows_and_reports_the_bad(files):
    try:
        _, parsed = oneroster.parse_package(files)
    except oneroster.PackageError as refusal:
        assert refusal.code.startswith(("manifest_", "file_")), refusal.code
        return
    for result in parsed.values():
        ids = [row["sourced_id"] for row in result.rows]
        assert len(ids) == len(set(ids))  # no row is kept twice
        assert result.read >= len(result.rows)
        for error in result.errors:
            assert error.file == result.name and error.line >= 1 and error.reason
        refused_lines = {e.line for e in result.errors if not e.kept}
        # Every row read is either kept or has a refusal saying why.
        assert len(result.rows) + len(refused_lines) >= result.read


@given(st.binary(max_size=600))
def test_any_upload_is_read_as_a_package_or_refused(data):
    try:
        files = oneroster.read_package(data)
    except oneroster.PackageError as refusal:
        assert refusal.code.startswith(("package_", "manifest_", "file_"))
        return
    assert "manifest" in files


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["manifest.csv", "users.csv", "Users.CSV", "a/b/orgs.csv",
                             "__MACOSX/x.csv", ".hidden.csv", "readme.txt", "classes.csv"]),
            st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                      st.just(b"\xef\xbb\xbfsourcedId\n"), st.just("姓名".encode("gbk"))),
        ),
        max_size=6,
    )
)  # fmt: skip
def test_any_zip_is_read_as_a_package_or_refused(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members:
            archive.writestr(name, content)
    try:
        files = oneroster.read_package(buffer.getvalue())
    except oneroster.PackageError as refusal:
        assert refusal.code.startswith(("package_", "manifest_", "file_"))
        return
    assert set(files) <= {*oneroster.ENTITY_FILES, "manifest"}
    assert all(isinstance(text, str) for text in files.values())


# -- SCIM ---------------------------------------------------------------------------
attribute = st.sampled_from(["userName", "displayName", "name.givenName", "emails",
                             "emails.value", "active", "meta.lastModified", "id",
                             "externalId", "members", "members.value", "nosuch",
                             "urn:ietf:params:scim:schemas:core:2.0:User:userName",
                             'emails[type eq "work"].value'])  # fmt: skip
operator = st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le",
                            "pr", "EQ", "xx"])  # fmt: skip
literal = st.one_of(
    st.text(max_size=10).map(lambda t: '"' + t.replace('"', '\\"') + '"'),
    st.sampled_from(["true", "false", "null", "42", "2026-01-01T00:00:00Z", '"']),
)


@st.composite
def filters(draw, depth=2):
    if depth == 0 or draw(st.booleans()):
        op = draw(operator)
        if op == "pr":
            return f"{draw(attribute)} pr"
        return f"{draw(attribute)} {op} {draw(literal)}"
    left, right = draw(filters(depth=depth - 1)), draw(filters(depth=depth - 1))
    shape = draw(st.sampled_from(["and", "or", "not", "paren"]))
    if shape == "not":
        return f"not ({left})"
    if shape == "paren":
        return f"({left}) and ({right})"
    return f"{left} {shape} {right}"


@given(st.sampled_from(["User", "Group"]), st.one_of(filters(), st.text(max_size=60)))
def test_a_scim_filter_is_parsed_or_refused_as_invalid_filter(kind, text):
    try:
        scim.parse_filter(kind, text)
    except ServiceError as refusal:
        assert refusal.code == "scim_invalid_filter"
        assert refusal.extra["scimType"] == "invalidFilter"


PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=12)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["value", "display", "givenName", "type",
                                         "primary", "userName", "x"]), inner, max_size=3),
    ),
    max_leaves=8,
)  # fmt: skip
patch_path = st.one_of(attribute, st.text(max_size=30), st.none())


@st.composite
def patch_documents(draw):
    operations = draw(
        st.lists(
            st.fixed_dictionaries(
                {"op": st.sampled_from(["add", "replace", "remove", "Add", "copy"])},
                optional={"path": patch_path, "value": json_value},
            ),
            max_size=4,
        )
    )
    document = {"schemas": draw(st.sampled_from([[PATCH_URN], [], ["x"]])),
                "Operations": operations}  # fmt: skip
    if draw(st.booleans()):
        document = draw(st.one_of(json_value, st.just(document)))
    return document


def _student():
    return scim.parse_resource(
        "User",
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
         "userName": "S2026001", "name": {"formatted": "王小明"}},
        "create",
    )  # fmt: skip


@given(patch_documents())
def test_a_scim_patch_is_applied_or_refused_with_its_scim_type(document):
    try:
        patch = scim.parse_patch("User", document)
        scim.apply_patch(patch, _student())
    except ServiceError as refusal:
        assert refusal.code.startswith("scim_"), refusal.code
        assert refusal.extra["scimType"]


# -- photos -------------------------------------------------------------------------
def _image(kind, size=(240, 320)):
    out = io.BytesIO()
    Image.new("RGB", size, (120, 30, 200)).save(out, format=kind)
    return out.getvalue()


VALID = {"PNG": _image("PNG"), "JPEG": _image("JPEG")}
SMALL_LIMITS = PhotoLimits(max_bytes=200_000, max_pixels=2_000_000, min_side=200)


@st.composite
def damaged_images(draw):
    data = bytearray(VALID[draw(st.sampled_from(sorted(VALID)))])
    for _ in range(draw(st.integers(0, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        cut = draw(st.integers(1, len(data)))
        data = data[:cut]
    return bytes(data) + draw(st.binary(max_size=20))


@given(st.one_of(damaged_images(), st.binary(max_size=300),
                 st.binary(max_size=300).map(lambda b: b"\x89PNG\r\n\x1a\n" + b),
                 st.binary(max_size=300).map(lambda b: b"\xff\xd8\xff" + b)))  # fmt: skip
def test_an_upload_is_cleaned_to_a_jpeg_or_refused_as_a_photo(data):
    try:
        jpeg, width, height = clean_photo(data, SMALL_LIMITS)
    except ServiceError as refusal:
        assert refusal.code.startswith("photo_"), refusal.code
        return
    reopened = Image.open(io.BytesIO(jpeg))
    assert reopened.format == "JPEG" and reopened.size == (width, height)
    assert min(width, height) >= SMALL_LIMITS.min_side
    assert "exif" not in reopened.info


def test_the_samples_are_there():
    """The OneRoster properties mutate the real samples: they must exist."""
    assert len(SAMPLE_SETS) >= 3
    for files in SAMPLE_SETS.values():
        assert "manifest" in files


@pytest.mark.parametrize("kind", sorted(VALID))
def test_a_valid_photo_survives_cleaning(kind):
    jpeg, width, height = clean_photo(VALID[kind], SMALL_LIMITS)
    assert (width, height) == (240, 320) and jpeg.startswith(b"\xff\xd8\xff")
