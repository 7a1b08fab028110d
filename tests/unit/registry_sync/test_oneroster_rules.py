"""OneRoster package and row rules without a database: manifest semantics,
whole-package refusals, row checks with file/line/field."""

import io
import zipfile

import pytest

from services.registry_sync import oneroster
from services.registry_sync.oneroster import Limits, PackageError

USERS = (
    "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,"
    "givenName,familyName,identifier\n"
)


def package(files, compression=zipfile.ZIP_DEFLATED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def manifest(version="1.1", **modes):
    text = f"propertyName,value\noneroster.version,{version}\n"
    return text + "".join(f"file.{k},{v}\n" for k, v in modes.items())


def parse(files):
    return oneroster.parse_package(oneroster.read_package(package(files)))


def test_the_manifest_decides_which_files_count_and_how():
    version, parsed = parse(
        {
            "manifest.csv": manifest(users="delta", classes="absent", orgs=""),
            "users.csv": USERS + "u1,active,2026-09-01,TRUE,o,student,s1,三,张,S1\n",
            "classes.csv": "ignored,because,absent\n",
        }
    )
    assert version == "1.1"
    assert {name: rows.mode for name, rows in parsed.items()} == {"users": "delta"}


def test_delta_rows_need_status_and_date_bulk_rows_do_not():
    line = "u1,,,TRUE,o,student,s1,三,张,S1\n"
    _, bulk = parse({"manifest.csv": manifest(users="bulk"), "users.csv": USERS + line})
    assert bulk["users"].errors == [] and len(bulk["users"].rows) == 1
    _, delta = parse(
        {"manifest.csv": manifest(users="delta"), "users.csv": USERS + line}
    )
    assert {(e.line, e.field) for e in delta["users"].errors} == {
        (2, "status"),
        (2, "dateLastModified"),
    }
    assert delta["users"].rows == []


@pytest.mark.parametrize(
    "row, field",
    [
        ("u1,active,1/05/2023,TRUE,o,student,s1,三,张,S1", "dateLastModified"),
        ("u1,gone,2026-09-01,TRUE,o,student,s1,三,张,S1", "status"),
        ("u1,active,2026-09-01,maybe,o,student,s1,三,张,S1", "enabledUser"),
        (",active,2026-09-01,TRUE,o,student,s1,三,张,S1", "sourcedId"),
        ("u1,active,2026-09-01,TRUE,o,student,,,,", "givenName"),
        ("u\x001,active,2026-09-01,TRUE,o,student,s1,三,张,S1", "sourcedId"),
        ("u1,active,2026-09-01,TRUE,o\x00,student,s1,三,张,S1", "orgSourcedIds"),
        ("u1,active,2026-09-01,TRUE,o,stu\x00dent,s1,三,张,S1", "role"),
    ],
)
def test_a_bad_row_is_named_and_the_good_ones_kept(row, field):
    good = "u2,active,2026-09-01,TRUE,o,student,s2,四,李,S2\n"
    _, parsed = parse(
        {"manifest.csv": manifest(users="bulk"), "users.csv": USERS + row + "\n" + good}
    )
    assert [(e.file, e.line, e.field) for e in parsed["users"].errors][0] == (
        "users",
        2,
        field,
    )
    assert [r["sourced_id"] for r in parsed["users"].rows] == ["u2"]


class _NotedIds(oneroster.SeenIds):
    """Notes every id handed to ``claim``: the worker's table gets the same."""

    def __init__(self):
        super().__init__()
        self.claimed = []

    def claim(self, entity, ids):
        self.claimed.extend(ids)
        return super().claim(entity, ids)


def test_a_nul_anywhere_refuses_its_row_and_never_reaches_the_database():
    """PostgreSQL text cannot hold NUL: a value with one would end the whole
    import in the worker's statements (the sourcedIds of bad rows are
    claimed too), not just its row."""
    seen = _NotedIds()
    classes = (
        "sourcedId,status,dateLastModified,title,classType,courseSourcedId,"
        "schoolSourcedId,termSourcedIds\n"
    )
    _, readers = oneroster.open_files(
        {
            "manifest": manifest(users="bulk", classes="bulk"),
            "users": USERS
            + "u\x001,active,2026-09-01,maybe,o,student,s1,三,张,S1\n"
            + "u2,active,2026-09-01,TRUE,o,student,s2,四,李,S2\n",
            "classes": classes
            + "c1,active,2026-09-01,一班,home\x00room,k1,o,t1\n"
            + "c2,active,2026-09-01,二班,homeroom,k1,o,t1\n",
        },
        seen,
    )
    kept = {name: list(reader) for name, reader in readers.items()}
    assert [r["sourced_id"] for r in kept["users"]] == ["u2"]
    assert [r["sourced_id"] for r in kept["classes"]] == ["c2"]
    assert {(e.line, e.field, e.reason) for e in readers["users"].errors} >= {
        (2, "sourcedId", "contains NUL")
    }
    assert [(e.line, e.field) for e in readers["classes"].errors] == [(2, "classType")]
    assert sorted(seen.claimed) == ["c1", "c2", "u2"]


def test_a_sourced_id_twice_keeps_the_first():
    row = "u1,active,2026-09-01,TRUE,o,student,s1,三,张,S1\n"
    _, parsed = parse(
        {"manifest.csv": manifest(users="bulk"), "users.csv": USERS + row * 2}
    )
    assert len(parsed["users"].rows) == 1
    assert parsed["users"].errors[0].line == 3


@pytest.mark.parametrize(
    "files, code",
    [
        ({"users.csv": USERS}, "manifest_missing"),
        (
            {"manifest.csv": manifest("3.0", users="bulk"), "users.csv": USERS},
            "manifest_invalid",
        ),
        (
            {"manifest.csv": manifest(users="sometimes"), "users.csv": USERS},
            "manifest_invalid",
        ),
        ({"manifest.csv": manifest(users="bulk")}, "file_missing"),
        (
            {
                "manifest.csv": manifest(users="bulk"),
                "users.csv": "sourcedId,givenName\n",
            },
            "file_columns_missing",
        ),
        (
            {
                "manifest.csv": manifest(users="bulk"),
                "users.csv": b"\xef\xbb\xbf" + USERS.encode(),
            },
            "file_has_bom",
        ),
        (
            {
                "manifest.csv": manifest(users="bulk"),
                "users.csv": (USERS + "u1,active,,TRUE,o,student,s1,三,张,S1\n").encode(
                    "gbk"
                ),
            },
            "file_encoding_gbk",
        ),
        (
            {"manifest.csv": manifest(users="bulk"), "users.csv": b"\xff\xfe\x00\x81"},
            "file_not_utf8",
        ),
    ],
)
def test_a_bad_package_is_refused_whole(files, code):
    with pytest.raises(PackageError) as refused:
        parse(files)
    assert refused.value.code == code and refused.value.detail


def test_not_a_zip_too_big_and_bombs_are_refused():
    with pytest.raises(PackageError) as refused:
        oneroster.read_package(b"plain text")
    assert refused.value.code == "package_not_zip"
    small = Limits(max_zip_bytes=100)
    with pytest.raises(PackageError) as refused:
        oneroster.read_package(
            package({"manifest.csv": "x" * 500}, zipfile.ZIP_STORED), small
        )
    assert refused.value.code == "package_too_large"
    bomb = package({"manifest.csv": manifest(), "orgs.csv": b"0" * (5 * 1024 * 1024)})
    with pytest.raises(PackageError) as refused:
        oneroster.read_package(bomb)
    assert refused.value.code == "package_zip_bomb"


def test_a_misspelt_column_is_named_with_its_likely_meaning():
    _, parsed = parse(
        {
            "manifest.csv": manifest(users="bulk"),
            "users.csv": USERS.replace("\n", ",prefferedGivenName\n"),
        }
    )
    assert parsed["users"].warnings == [
        "users.csv: unknown column 'prefferedGivenName' (did you mean "
        "'preferredGivenName'?)"
    ]
