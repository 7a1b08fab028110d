"""OneRoster 1.1 / 1.2 CSV packages: what a school's system uploads as a zip
and what we make of it. Pure: bytes in, typed rows and refusals out; the
import worker (``import_worker.py``) writes them.

A package is refused *as a whole* (``PackageError``: one clear code, nothing
changes) when it is not a zip, too big, a zip bomb, has no or a bad
``manifest.csv``, a file the manifest announces is missing or lacks a
required column, or a file is not UTF-8 (GBK/GB18030 from Excel, or a UTF-8
byte-order mark). Otherwise every row is checked on its own: a bad row is
reported (file, line, field, reason) and every good row is kept.

Chinese registry fields travel as documented ``metadata.*`` extension
columns of ``users.csv`` (OneRoster §3.2 allows them):

    metadata.studentNumber   学号 (default: identifier, then username)
    metadata.idType          resident_id | hmt_residence_permit | passport | …
    metadata.idNumber        the ID number (sealed on arrival)
    metadata.className       班级 (default: the homeroom class of enrollments)
    metadata.department      院系
    metadata.enrollmentYear  入学年份
    metadata.status          active | suspended | transferred | graduated | withdrawn
    metadata.name            the full name as written (default: familyName + givenName)

``enrollments.csv`` may carry ``metadata.kind`` (school_arranged |
free_elective), ``metadata.examEnded`` and ``metadata.gradesPublished``
(TRUE/FALSE) for course enrolments of scheduled classes.
"""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from services.common.vocabulary import ID_TYPES

__all__ = [
    "PackageError",
    "RowError",
    "Limits",
    "read_package",
    "parse_package",
    "ENTITY_FILES",
]

ENTITY_FILES = (
    "academicSessions",
    "orgs",
    "courses",
    "classes",
    "users",
    "roles",
    "enrollments",
)
# Columns a file must have whatever the mode; status and dateLastModified are
# checked per row (blank is allowed in bulk files, required in delta ones).
REQUIRED_COLUMNS = {
    "academicSessions": ("sourcedId", "title", "type", "startDate", "endDate"),
    "orgs": ("sourcedId", "name", "type"),
    "courses": ("sourcedId", "title"),
    "classes": (
        "sourcedId",
        "title",
        "courseSourcedId",
        "classType",
        "schoolSourcedId",
        "termSourcedIds",
    ),
    "users": ("sourcedId", "enabledUser", "username", "givenName", "familyName"),
    "roles": ("sourcedId", "userSourcedId", "roleType", "role", "orgSourcedId"),
    "enrollments": (
        "sourcedId",
        "classSourcedId",
        "schoolSourcedId",
        "userSourcedId",
        "role",
    ),
}
# Optional columns of the standard, so a misspelt one can be named.
OPTIONAL_COLUMNS = {
    "users": (
        "orgSourcedIds",
        "role",
        "userIds",
        "middleName",
        "identifier",
        "email",
        "sms",
        "phone",
        "agentSourcedIds",
        "grades",
        "password",
        "userMasterIdentifier",
        "preferredGivenName",
        "preferredMiddleName",
        "preferredFamilyName",
        "primaryOrgSourcedId",
        "pronouns",
    ),
    "classes": (
        "grades",
        "classCode",
        "location",
        "subjects",
        "subjectCodes",
        "periods",
    ),
    "academicSessions": ("parentSourcedId", "schoolYear"),
    "enrollments": ("primary", "beginDate", "endDate"),
    "roles": ("beginDate", "endDate", "userProfileSourcedId"),
    "orgs": ("identifier", "parentSourcedId"),
    "courses": (
        "schoolYearSourcedId",
        "courseCode",
        "grades",
        "orgSourcedId",
        "subjects",
        "subjectCodes",
    ),
}
KNOWN_VERSIONS = ("1.0", "1.1", "1.2")
STATUSES = ("active", "tobedeleted", "inactive")
STUDENT_STATUSES = ("active", "suspended", "transferred", "graduated", "withdrawn")
COURSE_KINDS = ("school_arranged", "free_elective")


class PackageError(Exception):
    """The whole package is refused; ``code`` is stable, ``detail`` says
    which file and what (never a row's personal data)."""

    def __init__(self, code, detail):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class RowError:
    file: str
    line: int
    field: str | None
    reason: str
    kept: bool = False  # a flawed value kept and reported (an ID number)


@dataclass(frozen=True)
class Limits:
    max_zip_bytes: int = 50 * 1024 * 1024
    max_unpacked_bytes: int = 500 * 1024 * 1024
    max_ratio: int = 100  # unpacked / packed per member: more is a bomb
    max_members: int = 64


@dataclass
class FileRows:
    name: str
    mode: str  # bulk | delta
    rows: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    read: int = 0
    skipped: int = 0
    warnings: list = field(default_factory=list)
    all_ids: set = field(default_factory=set)  # good rows or not


# -- the package ------------------------------------------------------------------


def read_package(data, limits=Limits()):
    """The CSV files of a zip as ``{entity name: text}`` (plus ``manifest``),
    or ``PackageError``."""
    if len(data) > limits.max_zip_bytes:
        raise PackageError(
            "package_too_large", f"more than {limits.max_zip_bytes} bytes"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise PackageError(
            "package_not_zip", "the upload is not a zip archive"
        ) from None
    if len(members) > limits.max_members:
        raise PackageError("package_too_many_files", f"{len(members)} files")
    total = sum(m.file_size for m in members)
    if total > limits.max_unpacked_bytes:
        raise PackageError("package_zip_bomb", f"unpacks to {total} bytes")
    files = {}
    for member in members:
        base = member.filename.replace("\\", "/").rsplit("/", 1)[-1]
        if base.startswith(".") or "__MACOSX" in member.filename:
            continue
        if not base.lower().endswith(".csv"):
            continue
        if member.file_size > limits.max_ratio * max(member.compress_size, 1) and (
            member.file_size > 1024 * 1024
        ):
            raise PackageError("package_zip_bomb", f"{base} expands too much")
        with archive.open(member) as handle:
            raw = handle.read(member.file_size + 1)
        if len(raw) > member.file_size:  # the header lied about the size
            raise PackageError("package_zip_bomb", f"{base} is larger than declared")
        stem = base[: -len(".csv")]
        match = next(
            (
                name
                for name in (*ENTITY_FILES, "manifest")
                if name.lower() == stem.lower()
            ),
            None,
        )
        if match is None:
            continue  # demographics, userProfiles, …: not the registry's business
        files[match] = _decode(base, raw)
    if "manifest" not in files:
        raise PackageError("manifest_missing", "manifest.csv is not in the zip")
    return files


def _decode(name, raw):
    if raw.startswith(b"\xef\xbb\xbf"):
        raise PackageError(
            "file_has_bom",
            f"{name} starts with a byte-order mark; save it as UTF-8 without BOM",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        raw.decode("gb18030")
    except UnicodeDecodeError:
        raise PackageError("file_not_utf8", f"{name} is not UTF-8 text") from None
    raise PackageError(
        "file_encoding_gbk",
        f"{name} is GBK/GB18030 (as Excel saves CSV); save it as UTF-8",
    )


def _rows(name, text):
    """(header, rows) of one CSV file: ``rows`` yields (line number,
    {column: value}) as the file is read — never the whole file's rows at
    once (a roster at the size limit holds millions)."""
    stream = io.StringIO(text, newline="") if isinstance(text, str) else text
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise PackageError("file_empty", f"{name}.csv has no header") from None
    except csv.Error:
        raise PackageError("file_not_csv", f"{name}.csv is not CSV") from None
    header = [column.strip() for column in header]

    def rows():
        try:
            for values in reader:
                if not any(value.strip() for value in values):
                    continue
                yield reader.line_num, dict(zip(header, values, strict=False))
        except csv.Error as exc:
            raise PackageError(
                "file_not_csv", f"{name}.csv line {reader.line_num}: {exc}"
            ) from None

    return header, rows()


def parse_manifest(text):
    """``{entity: "bulk" | "delta"}`` for the files the manifest announces,
    and the OneRoster version."""
    _, rows = _rows("manifest", text)
    properties = {
        row.get("propertyName", "").strip(): (row.get("value") or "").strip()
        for _, row in rows
    }
    if not properties:
        raise PackageError(
            "manifest_invalid", "manifest.csv has no propertyName,value rows"
        )
    version = properties.get("oneroster.version", "")
    if version not in KNOWN_VERSIONS:
        raise PackageError(
            "manifest_invalid", f"unsupported oneroster.version {version!r}"
        )
    modes = {}
    for entity in ENTITY_FILES:
        mode = properties.get(f"file.{entity}", "absent").lower() or "absent"
        if mode not in ("bulk", "delta", "absent"):
            raise PackageError("manifest_invalid", f"file.{entity} is {mode!r}")
        if mode != "absent":
            modes[entity] = mode
    return version, modes


# -- row checks ---------------------------------------------------------------------


def _timestamp(value):
    """OneRoster dateLastModified: ISO 8601 date or date-time (UTC when
    no zone is given); ``None`` for an unparsable value."""
    text = value.strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?", text):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _date(value):
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        return None


def _boolean(value):
    text = (value or "").strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    return None


class _Row:
    """One row's checks: each failed one adds a RowError; ``ok`` says
    whether the row is kept."""

    def __init__(self, file, line, values, mode):
        self.file, self.line, self.values, self.mode = file, line, values, mode
        self.errors = []

    def value(self, column):
        return (self.values.get(column) or "").strip()

    def refuse(self, column, reason):
        self.errors.append(RowError(self.file, self.line, column, reason))

    @property
    def ok(self):
        return not any(not error.kept for error in self.errors)

    def common(self):
        sourced_id = self.value("sourcedId")
        if not sourced_id:
            self.refuse("sourcedId", "required")
        elif len(sourced_id) > 255:
            self.refuse("sourcedId", "longer than 255 characters")
        status = self.value("status").lower()
        if status and status not in STATUSES:
            self.refuse("status", f"must be one of {', '.join(STATUSES)}")
        elif not status and self.mode == "delta":
            self.refuse("status", "required in a delta file")
        modified = None
        raw_modified = self.value("dateLastModified")
        if raw_modified:
            modified = _timestamp(raw_modified)
            if modified is None:
                self.refuse("dateLastModified", "not an ISO 8601 date (YYYY-MM-DD)")
        elif self.mode == "delta":
            self.refuse("dateLastModified", "required in a delta file")
        return {
            "sourced_id": sourced_id,
            "status": status or "active",
            "modified": modified,
            "line": self.line,
        }


def _text(row, column, maximum=255):
    value = row.value(column)
    if len(value) > maximum:
        row.refuse(column, f"longer than {maximum} characters")
        return None
    if "\x00" in value:
        row.refuse(column, "contains NUL")
        return None
    return value or None


def _session(row):
    record = row.common()
    record["title"] = _text(row, "title")
    record["type"] = row.value("type")
    record["start"] = _date(row.value("startDate"))
    record["end"] = _date(row.value("endDate"))
    if record["start"] is None:
        row.refuse("startDate", "not a date (YYYY-MM-DD)")
    if record["end"] is None:
        row.refuse("endDate", "not a date (YYYY-MM-DD)")
    if record["start"] and record["end"] and record["end"] < record["start"]:
        row.refuse("endDate", "before startDate")
    return record


def _class(row):
    record = row.common()
    record["title"] = _text(row, "title")
    if not record["title"]:
        row.refuse("title", "required")
    record["class_type"] = row.value("classType").lower() or None
    record["course_id"] = _text(row, "courseSourcedId")
    record["term_ids"] = [
        t.strip() for t in row.value("termSourcedIds").split(",") if t.strip()
    ]
    return record


def _user(row):
    record = row.common()
    record["enabled"] = _boolean(row.value("enabledUser"))
    if record["enabled"] is None:
        row.refuse("enabledUser", "must be TRUE or FALSE")
    record["username"] = _text(row, "username")
    record["role"] = row.value("role").lower() or None  # 1.1 only
    given, family = _text(row, "givenName", 64), _text(row, "familyName", 64)
    record["given_name"], record["family_name"] = given, family
    record["formatted_name"] = _text(row, "metadata.name", 64)
    if not (given or family or record["formatted_name"]):
        row.refuse("givenName", "a student needs a name")
    record["student_number"] = (
        _text(row, "metadata.studentNumber", 64)
        or _text(row, "identifier", 64)
        or record["username"]
    )
    if not record["student_number"]:
        row.refuse(
            "identifier", "a student number is required (identifier or username)"
        )
    record["grade"] = _text(row, "metadata.grade", 32) or _text(row, "grades", 32)
    record["class_name"] = _text(row, "metadata.className", 64)
    record["department"] = _text(row, "metadata.department", 64)
    year = row.value("metadata.enrollmentYear")
    record["enrollment_year"] = None
    if year:
        if re.fullmatch(r"(19|20)\d{2}", year):
            record["enrollment_year"] = int(year)
        else:
            row.refuse("metadata.enrollmentYear", "a year such as 2024")
    student_status = row.value("metadata.status").lower()
    if student_status and student_status not in STUDENT_STATUSES:
        row.refuse("metadata.status", f"must be one of {', '.join(STUDENT_STATUSES)}")
    record["student_status"] = student_status or None
    id_type = row.value("metadata.idType") or None
    if id_type and id_type not in ID_TYPES:
        row.refuse("metadata.idType", f"must be one of {', '.join(ID_TYPES)}")
    record["id_type"] = id_type
    record["id_number"] = _text(row, "metadata.idNumber", 40)
    return record


def _role(row):
    record = row.common()
    record["user_id"] = row.value("userSourcedId")
    record["role"] = row.value("role").lower()
    record["role_type"] = row.value("roleType").lower()
    return record


def _enrollment(row):
    record = row.common()
    record["class_id"] = row.value("classSourcedId")
    record["user_id"] = row.value("userSourcedId")
    if not record["class_id"]:
        row.refuse("classSourcedId", "required")
    if not record["user_id"]:
        row.refuse("userSourcedId", "required")
    record["role"] = row.value("role").lower()
    kind = row.value("metadata.kind").lower()
    if kind and kind not in COURSE_KINDS:
        row.refuse("metadata.kind", f"must be one of {', '.join(COURSE_KINDS)}")
    record["kind"] = kind or "school_arranged"
    record["exam_ended"] = _boolean(row.value("metadata.examEnded")) or False
    record["grades_published"] = (
        _boolean(row.value("metadata.gradesPublished")) or False
    )
    return record


def _simple(row):
    return row.common()


CHECKS = {
    "academicSessions": _session,
    "orgs": _simple,
    "courses": _simple,
    "classes": _class,
    "users": _user,
    "roles": _role,
    "enrollments": _enrollment,
}


def _similar(unknown, known):
    """A known column an unknown one is probably a misspelling of."""
    import difflib

    found = difflib.get_close_matches(unknown, known, n=1, cutoff=0.8)
    return found[0] if found else None


def parse_package(files):
    """``(version, {entity: FileRows})`` of a read package: every row
    checked, duplicates within a file refused (the first one kept)."""
    version, modes = parse_manifest(files["manifest"])
    parsed = {}
    for entity, mode in modes.items():
        if entity not in files:
            raise PackageError("file_missing", f"the manifest announces {entity}.csv")
        header, rows = _rows(entity, files[entity])
        missing = [c for c in REQUIRED_COLUMNS[entity] if c not in header]
        if entity == "users" and version != "1.2" and "role" not in header:
            missing.append("role")
        if missing:
            raise PackageError(
                "file_columns_missing", f"{entity}.csv lacks {', '.join(missing)}"
            )
        result = FileRows(entity, mode)
        known = (
            set(REQUIRED_COLUMNS[entity])
            | set(OPTIONAL_COLUMNS.get(entity, ()))
            | {"status", "dateLastModified"}
        )
        for column in header:
            if column and column not in known and not column.startswith("metadata."):
                guess = _similar(column, sorted(known))
                if guess and guess not in header:
                    result.warnings.append(
                        f"{entity}.csv: unknown column {column!r} (did you mean {guess!r}?)"
                    )
        seen = set()
        for line, values in rows:
            result.read += 1
            row = _Row(entity, line, values, mode)
            record = CHECKS[entity](row)
            if record["sourced_id"] and record["sourced_id"] in seen:
                row.refuse("sourcedId", "appears twice in the file")
            seen.add(record["sourced_id"])
            if record["sourced_id"]:
                result.all_ids.add(record["sourced_id"])
            result.errors.extend(row.errors)
            if row.ok:
                result.rows.append(record)
        parsed[entity] = result
    return version, parsed
