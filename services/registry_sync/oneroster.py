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

from services.common.contract.vocabulary import ID_TYPES

__all__ = [
    "PackageError",
    "RowError",
    "Limits",
    "Package",
    "FileReader",
    "SeenIds",
    "open_package",
    "open_files",
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


# A manifest is a few property lines; more is not a manifest.
MAX_MANIFEST_BYTES = 64 * 1024
# Row errors kept per file for the school to read; beyond them only counted
# (a file of a million bad rows must not hold a million reports).
MAX_LISTED_ERRORS = 10_000


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


class Package:
    """An opened zip whose checks passed: the manifest's text, and each CSV
    file the registry reads as a text stream decoded while it is read — a
    package at its size limit is never held decoded in memory."""

    def __init__(self, archive, members, manifest):
        self._archive = archive
        self._members = members  # entity name -> (file name, ZipInfo)
        self.manifest = manifest

    def __contains__(self, name):
        return name == "manifest" or name in self._members

    def names(self):
        return ["manifest", *self._members]

    def raw(self, name):
        """The whole file's bytes (for a whole-file read; see ``stream``)."""
        base, info = self._members[name]
        try:
            with self._archive.open(info) as handle:
                return handle.read()
        except (zipfile.BadZipFile, EOFError, ValueError):
            raise PackageError("package_not_zip", f"{base} is damaged") from None

    def stream(self, name):
        """The file as text, decoded as it is read (UTF-8 without BOM)."""
        base, info = self._members[name]
        try:
            with self._archive.open(info) as handle:
                head = handle.read(3)
        except (zipfile.BadZipFile, EOFError, ValueError):
            raise PackageError("package_not_zip", f"{base} is damaged") from None
        if head.startswith(b"\xef\xbb\xbf"):
            _decode(base, head)  # refuses with file_has_bom
        return _TextStream(self, name, base, info)


class _TextStream:
    """Lines of one member as text; an undecodable byte or a damaged member
    is the package's refusal, raised where it is met."""

    def __init__(self, package, name, base, info):
        self._package, self._name, self._base = package, name, base
        self._text = io.TextIOWrapper(
            package._archive.open(info), encoding="utf-8", newline=""
        )

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._text)
        except UnicodeDecodeError:
            self._text.close()
            # Tell GBK (Excel's CSV) from noise by the whole file's bytes
            # (read once, only on this refusal path).
            _decode(self._base, self._package.raw(self._name))
            raise PackageError(
                "file_not_utf8", f"{self._base} is not UTF-8 text"
            ) from None
        except (zipfile.BadZipFile, EOFError):
            raise PackageError("package_not_zip", f"{self._base} is damaged") from None
        except StopIteration:
            self._text.close()
            raise


def open_package(data, limits=Limits()):
    """A checked ``Package`` of a zip's bytes, or ``PackageError``."""
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
    found = {}
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
        found[match] = (base, member)
    if "manifest" not in found:
        raise PackageError("manifest_missing", "manifest.csv is not in the zip")
    base, info = found.pop("manifest")
    if info.file_size > MAX_MANIFEST_BYTES:
        raise PackageError("manifest_invalid", f"{base} is larger than a manifest")
    package = Package(archive, found, None)
    package._members["manifest"] = (base, info)
    manifest = _decode(base, package.raw("manifest"))
    del package._members["manifest"]
    package.manifest = manifest
    return package


def read_package(data, limits=Limits()):
    """The CSV files of a zip as ``{entity name: text}`` (plus ``manifest``),
    or ``PackageError``: the whole package decoded — for tools and tests;
    the import worker streams (``open_package``)."""
    package = open_package(data, limits)
    files = {"manifest": package.manifest}
    for name in package.names()[1:]:
        base, _ = package._members[name]
        files[name] = _decode(base, package.raw(name))
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


_ISO_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?")
_YEAR = re.compile(r"(19|20)\d{2}")


def _timestamp(value):
    """OneRoster dateLastModified: ISO 8601 date or date-time (UTC when
    no zone is given); ``None`` for an unparsable value."""
    text = value.strip()
    if not _ISO_TIMESTAMP.fullmatch(text):
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
        # PostgreSQL text cannot hold NUL: such a value, even in a row
        # refused for something else, would end the import's statements
        # (a bad row's sourcedId is still claimed), not just its row.
        nul = {column for column, value in self.values.items() if "\x00" in value}
        for column in sorted(nul):  # a header may hold one too
            self.refuse(column.replace("\x00", "\\x00"), "contains NUL")
        sourced_id = self.value("sourcedId")
        if "sourcedId" in nul:
            sourced_id = None  # never claimed: it can name no stored record
        elif not sourced_id:
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
    if "\x00" in value:  # refused in common()
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
        if _YEAR.fullmatch(year):
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


def makes_student(role):
    """Whether a roles.csv record (OneRoster 1.2) makes its user a student:
    a student role not marked for deletion."""
    return role["role"] == "student" and role["status"] != "tobedeleted"


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


class SeenIds:
    """Which sourcedIds each file named before: in memory (tools and
    tests). The import worker keeps them in a temporary table instead, so a
    file at the size limit holds no million ids in the worker's memory;
    both answer ``claim`` the same way."""

    def __init__(self):
        self.by_file = {}

    def claim(self, entity, ids):
        """Note ``ids`` (in file order) as named by ``entity``'s file; for
        each, whether the file named it before (earlier in ``ids`` too)."""
        known = self.by_file.setdefault(entity, set())
        seen = []
        for sourced_id in ids:
            seen.append(sourced_id in known)
            known.add(sourced_id)
        return seen


# Rows checked per batch: the unit in which a reader asks whether ids were
# seen before (one round trip per batch for the worker's table).
BATCH_ROWS = 1000


class FileReader:
    """One file the manifest announces, its header already checked.
    Iterating yields its good records while the file is read (each row
    checked, a sourcedId seen twice refused — the first kept), gathering the
    counts and the row errors (the first ``MAX_LISTED_ERRORS``) on the way,
    and noting every sourcedId the file names (good rows or not) in
    ``seen``. One pass."""

    def __init__(self, name, mode, rows, warnings, seen):
        self.name, self.mode, self.warnings = name, mode, warnings
        self._rows = rows
        self.seen = seen
        self.read = self.kept = self.refused = self.unlisted = 0
        self.errors = []

    def __iter__(self):
        check = CHECKS[self.name]
        batch = []
        for line, values in self._rows:
            self.read += 1
            row = _Row(self.name, line, values, self.mode)
            batch.append((row, check(row)))
            if len(batch) >= BATCH_ROWS:
                yield from self._settle(batch)
                batch = []
        yield from self._settle(batch)
        if self.unlisted:
            self.warnings.append(
                f"{self.name}.csv: {self.unlisted} more row errors not listed"
            )

    def _settle(self, batch):
        named = [(row, record) for row, record in batch if record["sourced_id"]]
        repeated = self.seen.claim(
            self.name, [record["sourced_id"] for _, record in named]
        )
        for (row, _), twice in zip(named, repeated, strict=True):
            if twice:
                row.refuse("sourcedId", "appears twice in the file")
        for row, record in batch:
            for error in row.errors:
                self.report(error)
            if row.ok:
                self.kept += 1
                yield record

    def report(self, error):
        """Keep a row error for the school (counted beyond the listed ones)."""
        if not error.kept:
            self.refused += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append(error)
        else:
            self.unlisted += 1

    def drain(self):
        """Check the rest of the file (its errors still count)."""
        for _ in self:
            pass


def open_files(source, seen=None):
    """``(version, {entity: FileReader})`` for the files the manifest
    announces, each header checked now — a package whose file is missing or
    lacks a column is refused before any row is read. ``source``: an
    ``open_package`` result (files streamed) or ``{name: text}``; ``seen``:
    where the files' sourcedIds are kept (default ``SeenIds()``)."""
    seen = seen if seen is not None else SeenIds()
    streamed = isinstance(source, Package)
    version, modes = parse_manifest(source.manifest if streamed else source["manifest"])
    readers = {}
    for entity, mode in modes.items():
        if entity not in source:
            raise PackageError("file_missing", f"the manifest announces {entity}.csv")
        text = source.stream(entity) if streamed else source[entity]
        header, rows = _rows(entity, text)
        missing = [c for c in REQUIRED_COLUMNS[entity] if c not in header]
        if entity == "users" and version != "1.2" and "role" not in header:
            missing.append("role")
        if missing:
            raise PackageError(
                "file_columns_missing", f"{entity}.csv lacks {', '.join(missing)}"
            )
        known = (
            set(REQUIRED_COLUMNS[entity])
            | set(OPTIONAL_COLUMNS.get(entity, ()))
            | {"status", "dateLastModified"}
        )
        warnings = []
        for column in header:
            if column and column not in known and not column.startswith("metadata."):
                guess = _similar(column, sorted(known))
                if guess and guess not in header:
                    warnings.append(
                        f"{entity}.csv: unknown column {column!r} (did you mean {guess!r}?)"
                    )
        readers[entity] = FileReader(entity, mode, rows, warnings, seen)
    return version, readers


def parse_package(files):
    """``(version, {entity: FileRows})`` of a read package, every file read
    whole (tools and tests; the import worker iterates ``open_files``)."""
    seen = SeenIds()
    version, readers = open_files(files, seen)
    parsed = {}
    for entity, reader in readers.items():
        rows = list(reader)
        parsed[entity] = FileRows(
            entity,
            reader.mode,
            rows=rows,
            errors=reader.errors,
            read=reader.read,
            warnings=reader.warnings,
            all_ids=seen.by_file.get(entity, set()),
        )
    return version, parsed
