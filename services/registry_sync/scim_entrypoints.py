"""SCIM 2.0 entrypoints of registry_sync: a school's system creates, reads,
replaces, patches, deletes and lists its students (Users) and classes
(Groups). Mixed into ``RegistrySyncService``; the resource rules are in
``scim.py``, the SQL in ``store.py``. Every call is scoped to the school the
token it carries: another school's resource is simply not found.

The gateway passes the school system's token on rather than asking
``authenticate_school`` first: a SCIM call is one hop, not two, and the
token's check and audit row are one statement of their own (committed
whatever the call's outcome). A student's create by a token this process
has seen (``known_schools``) folds that statement into its write: one round
trip for the whole create (``_create_student_at_once``)."""

import logging
import uuid

from marshmallow import ValidationError

from services.common.contract.errors import (
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    ServiceError,
    Unauthenticated,
)
from services.common.plumbing.rpc import rpc
from services.common.rules.calendar import beijing_day
from services.registry_sync import scim
from services.registry_sync.domain import id_hint
from services.registry_sync.schemas import (
    SCIM_KINDS,
    SchoolCaller,
    ScimDiscoveryRequest,
    ScimListRequest,
    ScimResourceRequest,
    ScimSearchRequest,
    ScimUpdateRequest,
    ScimWriteRequest,
)
from services.registry_sync.scim_filter import FilterSql

__all__ = ["ScimEntrypoints"]

log = logging.getLogger(__name__)

_CALLER = SchoolCaller()
_DISCOVERY = ScimDiscoveryRequest()
_WRITE = ScimWriteRequest()
_RESOURCE = ScimResourceRequest()
_UPDATE = ScimUpdateRequest()
_LIST = ScimListRequest()
_SEARCH = ScimSearchRequest()
LIST_RESPONSE_URN = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def _list_response(resources, total, start):
    """A ListResponse (RFC 7644 §3.4.2): one page of ``total`` results."""
    return {
        "schemas": [LIST_RESPONSE_URN],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def _resource_id(raw):
    """A resource id is one of our UUIDs; anything else names nothing."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("scim_resource_not_found") from None


def _check_version(if_match, version):
    """RFC 7232 If-Match against the stored version: ``*`` or the ETag we
    gave out (weak or strong form); anything else fails the precondition."""
    if if_match is None:
        return
    tags = [tag.strip() for tag in if_match.split(",")]
    if "*" in tags:
        return
    wanted = scim.etag(version)
    if not any(tag.removeprefix("W/") == wanted.removeprefix("W/") for tag in tags):
        raise PreconditionFailed(
            "precondition_failed", {"scim_detail": "If-Match does not match"}
        )


class ScimEntrypoints:
    """Needs ``db``, ``clock``, ``keys``, ``verifier`` and ``known_schools``
    of the service."""

    @rpc
    def scim_discovery(self, payload):
        request = _DISCOVERY.load(payload)
        return scim.discovery(request["base_url"])

    # -- helpers --------------------------------------------------------------
    def _school_request(self, schema, payload):
        """``payload`` loaded by ``schema``, for the school whose token it
        carries (``school_code`` in place of the token). The token is
        checked, and the call audited as its ``action``, before the rest
        of the payload is judged."""
        caller = _CALLER.load(payload)
        token_hash = self.keys.school_token_hash(caller["school_token"])
        school = self._checked_school(token_hash, caller["action"], self.clock())
        request = schema.load(payload)
        del request["school_token"], request["action"]
        return {
            **request,
            "school_code": school["code"],
            "scim_sources": school["scim_sources"],
        }

    def _checked_school(self, token_hash, action, now):
        """The school whose token this is, the call audited as ``action``
        (``known_schools`` kept in step); ``Unauthenticated`` when none."""
        school = self.db.school_call(token_hash, action, now)
        if school is None:
            self.known_schools.forget(token_hash)
            raise Unauthenticated("invalid_school_token")
        self.known_schools.remember(token_hash, school)
        return school

    def _new_student_record(self, school_code, resource, now):
        """``(record for the store, the ID number as given)`` of a student to
        create from a parsed resource."""
        columns, id_number = self._student_record(resource, now)
        record = {**columns, "id": uuid.uuid4(), "school_code": school_code, "now": now}
        return record, id_number

    def _student_record(self, student, now):
        """Columns to store for a parsed student, the ID number sealed, and
        the ID number as given (None when absent)."""
        columns = scim.student_columns(student, beijing_day(now))
        as_given = columns.pop("id_number")
        normalised = columns.pop("id_normalised")
        # PUT and PATCH carry the whole resource, so an absent ID number is
        # a removed one.
        columns["id_given"] = True
        columns["id_sealed"] = self.keys.id_sealer.seal(as_given) if as_given else None
        columns["id_hash"] = self.keys.id_hash(normalised) if normalised else None
        columns["id_hint"] = id_hint(normalised or as_given)
        return columns, as_given

    def _document(self, kind, row, base_url):
        if kind == "User":
            groups = self.db.groups_of_students([row["id"]])[row["id"]]
            return scim.student_document(row, groups, base_url, self._id_number(row))
        members = self.db.members_of_groups([row["id"]])[row["id"]]
        return scim.group_document(row, members, base_url)

    def _id_number(self, row):
        sealed = row["id_sealed"]
        return self.keys.id_sealer.open(sealed) if sealed is not None else None

    def _answer(self, kind, row, request, status=200, document=None, rendered=False):
        """``rendered``: ``document`` is already what ``scim.render`` makes
        of it (a student just built from the model that validated it), so
        with no attribute selection it is answered as it is."""
        if document is None:
            document = self._document(kind, row, request["base_url"])
        problems = {}
        if kind == "User" and row["id_problem"]:
            problems["idNumber"] = row["id_problem"]
        selected = request["attributes"] or request["excluded_attributes"]
        if selected or not rendered:
            document = scim.render(
                kind, document, request["attributes"], request["excluded_attributes"]
            )
        return {
            "status": status,
            "problems": problems,
            "etag": scim.etag(row["version"]),
            "document": document,
        }

    def _load(self, kind, school_code, raw_id):
        resource_id = _resource_id(raw_id)
        row = (
            self.db.student(school_code, resource_id)
            if kind == "User"
            else self.db.group(school_code, resource_id)
        )
        if row is None:
            raise NotFound("scim_resource_not_found")
        return row

    def _members(self, school_code, group):
        """``[(student id, display, type)]`` of a parsed group. A member
        that is not a live student of this school (an id we never gave, a
        student deleted meanwhile, another school's) is set aside, not
        refused: RFC 7644 §3.5.2 does not ask a server to check, and an
        identity provider replaying a membership after a deletion must not
        fail the whole group (scim-sanity's E5). The write keeps only this
        school's live students (``ADD_MEMBERS_SQL``), so the answer lists
        exactly the members kept, and another school's student is treated
        as an unknown id: nothing says it exists."""
        members = {}
        for member in group.members or ():
            if (member.type or "User") != "User" or not member.value:
                raise InvalidRequest(
                    "scim_member_unknown",
                    {"scimType": "invalidValue", "scim_detail": "members are Users"},
                )
            try:
                members[uuid.UUID(member.value)] = (member.display, member.type)
            except ValueError:
                continue  # not an id of ours: nobody's member here
        return [(key, *value) for key, value in members.items()]

    def _save(self, kind, school_code, resource, row, now):
        """Write a parsed resource over ``row`` (None: create); the new row."""
        if kind == "User":
            columns, _ = self._student_record(resource, now)
            record = {**columns, "school_code": school_code, "now": now}
            if row is None:
                saved = self.db.insert_student({**record, "id": uuid.uuid4()})
            else:
                saved = self.db.update_student(
                    {**record, "id": row["id"], "version": row["version"]}
                )
            if saved is not None:
                self.verifier.roster_changed(
                    school_code, [saved["student_number"]], now
                )
                if row is not None and row["student_number"] != saved["student_number"]:
                    self.verifier.roster_changed(
                        school_code, [row["student_number"]], now
                    )
            return saved
        columns = scim.group_columns(resource)
        members = self._members(school_code, resource)
        columns.pop("members")
        record = {**columns, "school_code": school_code, "now": now}
        if row is None:
            saved = self.db.insert_group({**record, "id": uuid.uuid4()})
        else:
            saved = self.db.update_group(
                {**record, "id": row["id"], "version": row["version"]}
            )
        if saved is not None:
            self.db.set_members(school_code, saved["id"], members)
        return saved

    # -- entrypoints ------------------------------------------------------------
    @rpc
    def scim_create(self, payload):
        if payload.get("kind") == "User":
            answer = self._create_student_at_once(payload)
            if answer is not None:
                return answer
        request = self._school_request(_WRITE, payload)
        kind, school_code = request["kind"], request["school_code"]
        resource = scim.parse_resource(
            kind, request["document"], "create", request["scim_sources"]
        )
        if kind == "User":
            return self._create_student(
                *self._new_student_record(school_code, resource, self.clock()), request
            )
        row = self._save(kind, school_code, resource, None, self.clock())
        self.db.audit_school_system(
            school_code,
            f"scim.{kind.lower()}_created",
            self.clock(),
            resource_id=row["id"],
        )
        answer = self._answer(kind, row, request, status=201)
        self.db.commit()
        return answer

    def _create_student_at_once(self, payload):
        """A new student by a school this process already knows the token of
        (``known_schools``): the body is judged first, then one statement
        checks the token again, audits the call and writes the student and
        its audit row (one round trip instead of four). None when the token
        is new here or moved since: the caller takes the two-step way. What
        is refused is still audited as a call, after the token is checked
        again, so a token gone meanwhile is told so first, as before."""
        caller = _CALLER.load(payload)
        token_hash = self.keys.school_token_hash(caller["school_token"])
        school = self.known_schools.get(token_hash)
        if school is None:
            return None
        now = self.clock()
        try:
            request = _WRITE.load(payload)
            resource = scim.parse_resource(
                "User", request["document"], "create", school["scim_sources"]
            )
            record, id_number = self._new_student_record(school["code"], resource, now)
            row = self.db.create_student_as_school(
                token_hash,
                school["scim_sources"],
                caller["action"],
                record,
                "scim.user_created",
            )
        except (ServiceError, ValidationError):
            # Refused (a bad body, a userName taken): nothing was written,
            # and the call is checked and audited as any other refused one
            # (Unauthenticated first when the token is gone meanwhile).
            self._checked_school(token_hash, caller["action"], now)
            raise
        if row is None:  # the token or the school's sources moved since
            self.known_schools.forget(token_hash)
            return None
        request["school_code"] = school["code"]
        if row["named_by_verifications"]:
            # Rare: the account came first. The call is audited; the student
            # is written with the verifications' re-judging in one transaction.
            return self._create_student(record, id_number, request)
        return self._created_answer(row, request, id_number)

    def _create_student(self, record, id_number, request):
        """A new student: one statement writes it and its audit row, and the
        answer is built from what was written: a new student is in no class
        yet, and its ID number is the one just given (not opened again from
        the seal). The document comes from the dump of the model that
        validated the request, so it is answered without a second pass
        through the model (a third of this call's CPU went to that pass)."""
        row = self.db.create_student(record, "scim.user_created")
        if row["named_by_verifications"]:  # rare: the account came first
            self.verifier.roster_changed(
                record["school_code"], [row["student_number"]], record["now"]
            )
        answer = self._created_answer(row, request, id_number)
        self.db.commit()
        return answer

    def _created_answer(self, row, request, id_number):
        document = scim.student_document(row, [], request["base_url"], id_number)
        return self._answer(
            "User", row, request, status=201, document=document, rendered=True
        )

    @rpc
    def scim_get(self, payload):
        request = self._school_request(_RESOURCE, payload)
        kind = request["kind"]
        row = self._load(kind, request["school_code"], request["id"])
        return self._answer(kind, row, request)

    @rpc
    def scim_replace(self, payload):
        request = self._school_request(_UPDATE, payload)
        kind, school_code = request["kind"], request["school_code"]
        row = self._load(kind, school_code, request["id"])
        _check_version(request["if_match"], row["version"])
        resource = scim.parse_resource(
            kind, request["document"], "replace", request["scim_sources"]
        )
        current = scim.as_model(kind, self._document(kind, row, request["base_url"]))
        scim.replace_checks(resource, current)
        saved = self._save(kind, school_code, resource, row, self.clock())
        if saved is None:  # changed between our read and write
            raise PreconditionFailed("precondition_failed")
        self.db.audit_school_system(
            school_code,
            f"scim.{kind.lower()}_replaced",
            self.clock(),
            resource_id=row["id"],
        )
        answer = self._answer(kind, saved, request)
        self.db.commit()
        return answer

    @rpc
    def scim_patch(self, payload):
        request = self._school_request(_UPDATE, payload)
        kind, school_code = request["kind"], request["school_code"]
        row = self._load(kind, school_code, request["id"])
        _check_version(request["if_match"], row["version"])
        patch = scim.parse_patch(kind, request["document"], request["scim_sources"])
        resource = scim.as_model(kind, self._document(kind, row, request["base_url"]))
        if scim.apply_patch(patch, resource):
            saved = self._save(kind, school_code, resource, row, self.clock())
            if saved is None:
                raise PreconditionFailed("precondition_failed")
            self.db.audit_school_system(
                school_code,
                f"scim.{kind.lower()}_patched",
                self.clock(),
                resource_id=row["id"],
            )
            row = saved
        answer = self._answer(kind, row, request)
        self.db.commit()
        return answer

    @rpc
    def scim_delete(self, payload):
        request = self._school_request(_RESOURCE, payload)
        kind, school_code = request["kind"], request["school_code"]
        row = self._load(kind, school_code, request["id"])
        _check_version(request["if_match"], row["version"])
        now = self.clock()
        if kind == "User":
            deleted = self.db.delete_student(
                school_code, row["id"], row["version"], now
            )
            if deleted:
                self.verifier.roster_changed(school_code, [row["student_number"]], now)
        else:
            deleted = self.db.delete_group(school_code, row["id"], row["version"], now)
        if not deleted:
            raise PreconditionFailed("precondition_failed")
        self.db.audit_school_system(
            school_code,
            f"scim.{kind.lower()}_deleted",
            self.clock(),
            resource_id=row["id"],
        )
        self.db.commit()
        return {"status": 204}

    @rpc
    def scim_list(self, payload):
        return self._list_page(self._school_request(_LIST, payload))

    @rpc
    def scim_search(self, payload):
        """Users first, then Groups, paged as one list (RFC 7644 §3.4.3). A
        filter naming an attribute only one type has matches nothing of the
        other (§3.4.2.1); one that fits neither type is refused."""
        request = self._school_request(_SEARCH, payload)
        start = max(request["start_index"], 1)
        count = request["count"]
        count = scim.MAX_RESULTS if count is None else max(count, 0)
        refusals, resources, total, offset = [], [], 0, start - 1
        for kind in SCIM_KINDS:
            wanted = max(count - len(resources), 0)
            try:
                page = self._list_page(
                    {
                        **request,
                        "kind": kind,
                        "start_index": max(offset, 0) + 1,
                        "count": wanted,
                    }
                )
            except InvalidRequest as exc:
                if exc.code != "scim_invalid_filter" or not request["filter"]:
                    raise
                refusals.append(exc)
                continue
            resources.extend(page["Resources"])
            total += page["totalResults"]
            offset -= page["totalResults"]
        if len(refusals) == len(SCIM_KINDS):  # the filter fits neither type
            raise refusals[0]
        return _list_response(resources, total, start)

    def _list_page(self, request):
        kind, school_code = request["kind"], request["school_code"]
        compiler = FilterSql(kind, scim.STUDENT_URN)
        where = "TRUE"
        if request["filter"]:
            where = compiler.visit(scim.parse_filter(kind, request["filter"]))
        order = compiler.order_by(
            request["sort_by"], request["sort_order"] == "descending"
        )
        # RFC 7644 §3.4.2.4: startIndex < 1 is 1, a negative count is 0.
        start = max(request["start_index"], 1)
        count = request["count"]
        count = (
            scim.MAX_RESULTS if count is None else min(max(count, 0), scim.MAX_RESULTS)
        )
        rows, total = self.db.list_resources(
            kind, school_code, where, compiler.params, order, count, start - 1
        )
        ids = [row["id"] for row in rows]
        if kind == "User":
            related = self.db.groups_of_students(ids)
            documents = [
                scim.student_document(
                    row, related[row["id"]], request["base_url"], self._id_number(row)
                )
                for row in rows
            ]
        else:
            related = self.db.members_of_groups(ids)
            documents = [
                scim.group_document(row, related[row["id"]], request["base_url"])
                for row in rows
            ]
        resources = [
            scim.render(
                kind, document, request["attributes"], request["excluded_attributes"]
            )
            for document in documents
        ]
        return _list_response(resources, total, start)
