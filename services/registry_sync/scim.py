"""SCIM 2.0 (RFC 7643/7644) resources of the school registry: what a school's
system pushes (students as Users, classes as Groups), what we publish about
them (Schemas, ResourceTypes, ServiceProviderConfig), and the request
semantics (PATCH, attribute selection, ETags). Pure: the resource models,
parsing and PATCH come from ``scim2-models``; SQL lives in the store.

Decisions a school's IT department should know (also in the README):

* **Users are students.** We publish a subset of the core User schema
  (``userName``, ``name``, ``displayName``, ``active``, ``groups``) plus our
  extension ``STUDENT_URN`` with the registry fields. Attributes we do not
  publish are not stored: a student's e-mail or address is not the
  registry's business.
* **The ID number** is sealed and keyed-hashed as identity does. The school
  that pushed it reads it back whole over SCIM (its own record, behind its
  own token — it already holds it); every other answer and every log masks
  it. A value that fails the rules of its ID type is *kept and reported*
  (answer header ``X-Registry-Problems: idNumber=id_checksum_invalid``, and
  the school admin's unmatched list) rather than refused: the rest of the
  record is still the registry's truth, and such a record never matches a
  student's ID.
* **The student number** is ``studentNumber`` when given, else the
  enterprise extension's ``employeeNumber``, else ``userName``.
* **What identity providers send** (Microsoft Entra ID, Okta, campus IdPs
  provision with their own default attribute sets) is accepted
  (``adopt_provisioned_user``, ``adopt_provisioned_patch``): core User
  attributes the registry does not keep (``emails``, ``phoneNumbers``,
  ``title``, ``locale``, …) are ignored as RFC 7644 §3.3 allows, and so
  are enterprise attributes other than ``employeeNumber`` and
  ``department``, which land in our extension's ``studentNumber`` (when it
  has none) and ``department``. Neither is promised in ``/Schemas`` nor
  answered on GET. PATCH ``op`` names are taken in any case (Entra writes
  ``Replace``) and Entra's ``"True"``/``"False"`` strings for ``active``
  as booleans.
"""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

from typing import Annotated

from pydantic import Field
from pydantic import ValidationError as PydanticValidationError
from scim2_models import (
    URN,
    AuthenticationScheme,
    Bulk,
    CaseExact,
    ChangePassword,
    Context,
    ETag,
    Extension,
    Filter,
    Group,
    GroupMembership,
    Mutability,
    Name,
    Patch,
    PatchOp,
    Required,
    Resource,
    ResourceType,
    ResponseParameters,
    SCIMException,
    ScimFilter,
    ServiceProviderConfig,
    Sort,
    Uniqueness,
)

from services.common.contract.errors import InvalidRequest
from services.common.contract.vocabulary import ID_TYPES
from services.common.rules.realname import comparable_name
from services.registry_sync.domain import STUDENT_URN, sealable_id

__all__ = [
    "STUDENT_URN",
    "ENTERPRISE_URN",
    "adopt_provisioned_user",
    "adopt_provisioned_patch",
    "IDENTIFIER_SOURCES",
    "DEFAULT_SOURCES",
    "checked_sources",
    "STUDENT_STATUSES",
    "MAX_RESULTS",
    "StudentRecord",
    "Student",
    "Group",
    "discovery",
    "parse_resource",
    "parse_patch",
    "parse_filter",
    "student_columns",
    "group_columns",
    "student_document",
    "group_document",
    "render",
    "etag",
    "scim_refusal",
]

# A school's own word for where a student stands; only "active" counts as
# enrolled for registry verification.
STUDENT_STATUSES = ("active", "suspended", "transferred", "graduated", "withdrawn")
MAX_RESULTS = 200


class StudentRecord(Extension):
    """The registry fields of a student (our extension schema)."""

    __schema__ = URN(STUDENT_URN)

    student_number: Annotated[str | None, CaseExact.true] = None
    id_type: str | None = Field(None, examples=list(ID_TYPES))
    id_number: Annotated[str | None, CaseExact.true] = None
    grade: str | None = None
    class_name: str | None = None
    department: str | None = None
    enrollment_year: int | None = None
    status: str | None = Field(None, examples=list(STUDENT_STATUSES))


class Student(Resource[StudentRecord]):
    """A student: the part of the core User schema a registry needs."""

    __schema__ = URN("urn:ietf:params:scim:schemas:core:2.0:User")

    user_name: Annotated[str | None, Uniqueness.server, Required.true] = None
    name: Name | None = None
    display_name: str | None = None
    active: bool | None = None
    groups: Annotated[list[GroupMembership] | None, Mutability.read_only] = None


MODELS = {"User": Student, "Group": Group}


# -- discovery ----------------------------------------------------------------


def _service_provider_config():
    return ServiceProviderConfig(
        documentation_uri="https://example.invalid/docs#school-systems",
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="School API token",
                description="Authorization: Bearer <school API token>, one per school",
                primary=True,
            )
        ],
    )


def discovery(base_url):
    """The three discovery documents, with ``meta.location`` under ``base_url``."""
    schemas = []
    for model in (Student, StudentRecord, Group):
        schema = model.to_schema()
        if model is Student:
            schema.name, schema.description = "User", "Student"
        elif model is StudentRecord:
            schema.name = "Student"
            schema.description = "Registry fields of a student"
        dumped = schema.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
        dumped["meta"] = {
            "resourceType": "Schema",
            "location": f"{base_url}/Schemas/{schema.id}",
        }
        schemas.append(dumped)
    resource_types = []
    for name, model in MODELS.items():
        resource_type = ResourceType.from_resource(model)
        resource_type.id = resource_type.name = name
        resource_type.endpoint = f"/{name}s"
        dumped = resource_type.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
        dumped["meta"] = {
            "resourceType": "ResourceType",
            "location": f"{base_url}/ResourceTypes/{name}",
        }
        resource_types.append(dumped)
    config = _service_provider_config().model_dump(
        scim_ctx=Context.RESOURCE_QUERY_RESPONSE
    )
    config["meta"] = {
        "resourceType": "ServiceProviderConfig",
        "location": f"{base_url}/ServiceProviderConfig",
    }
    return {
        "schemas": schemas,
        "resource_types": resource_types,
        "service_provider_config": config,
    }


# -- refusals -----------------------------------------------------------------


def scim_refusal(exc):
    """A ``ServiceError`` for a scim2-models refusal, carrying the scimType.
    The detail names the attribute and the rule, never the value (it may be
    an ID number)."""
    if isinstance(exc, SCIMException):
        scim_type = exc.scim_type or "invalidValue"
        detail = type(exc).__name__.replace("Exception", "")
    else:  # pydantic's ValidationError
        scim_type = "invalidValue"
        for error in exc.errors():
            if str(error.get("type", "")).startswith("scim_"):
                scim_type = error["type"][len("scim_") :]
                break
        detail = "; ".join(
            ".".join(str(part) for part in error.get("loc", ())) or "body"
            for error in exc.errors()
        )
        detail = f"invalid attribute(s): {detail}"
    code = {
        "invalidFilter": "scim_invalid_filter",
        "invalidPath": "scim_invalid_path",
        "noTarget": "scim_no_target",
        "mutability": "scim_mutability",
        "invalidSyntax": "scim_invalid_syntax",
        "uniqueness": "scim_uniqueness",
        "tooMany": "scim_too_many",
        "invalidVers": "scim_invalid_version",
    }.get(scim_type, "scim_invalid_value")
    return InvalidRequest(code, {"scimType": scim_type, "scim_detail": detail[:300]})


# -- what identity providers send ------------------------------------------------

ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
# RFC 7643 §4.1's User attributes a school registry does not keep: an IdP's
# default set carries them, RFC 7644 §3.3 lets a server ignore them.
_UNKEPT_USER_ATTRIBUTES = frozenset(
    name.lower()
    for name in (
        "nickName", "profileUrl", "title", "userType", "preferredLanguage",
        "locale", "timezone", "password", "emails", "phoneNumbers", "ims",
        "photos", "addresses", "entitlements", "roles", "x509Certificates",
    )
)  # fmt: skip
# Where a school's student numbers and ID numbers come from, in order (the
# first present wins): a per-school setting ops or its admin sets, so an
# Entra ID tenant provisions without custom extension mappings.
IDENTIFIER_SOURCES = {
    "student_number": ("extension", "employeeNumber", "userName", "externalId"),
    "id_number": ("extension", "employeeNumber", "externalId"),
}
DEFAULT_SOURCES = {
    "student_number": ("extension", "employeeNumber", "userName"),
    "id_number": ("extension",),
}
_EXTENSION_FIELD = {"student_number": "studentNumber", "id_number": "idNumber"}
# The enterprise extension's attributes kept beside the identifiers.
_ENTERPRISE_KEPT = {"department": "department"}
_TRUTH = {"true": True, "false": False}


def _root_attribute(path):
    """``emails[type eq "work"].value`` → ``emails``."""
    end = len(path)
    for mark in ("[", "."):
        at = path.find(mark)
        if at != -1:
            end = min(end, at)
    return path[:end].lower()


def checked_sources(sources):
    """A school's identifier sources, complete (defaults where it names
    none); ``InvalidRequest`` for an unknown source, a repeat or an empty
    list."""
    checked = {}
    for identifier, allowed in IDENTIFIER_SOURCES.items():
        chosen = (sources or {}).get(identifier)
        if chosen is None:
            checked[identifier] = DEFAULT_SOURCES[identifier]
            continue
        if (
            not chosen
            or len(set(chosen)) != len(chosen)
            or any(source not in allowed for source in chosen)
        ):
            raise InvalidRequest(
                "scim_sources_invalid",
                {"errors": {identifier: [f"an order of {', '.join(allowed)}"]}},
            )
        checked[identifier] = tuple(chosen)
    return checked


def _enterprise_field(name, sources=None):
    """Our extension's field for an enterprise attribute, or None: the
    identifier whose sources name it first, else a kept attribute."""
    lowered = name.lower()
    for identifier, chosen in checked_sources(sources).items():
        if any(source.lower() == lowered for source in chosen):
            return _EXTENSION_FIELD[identifier]
    return _ENTERPRISE_KEPT.get(lowered)


def _as_bool(value):
    """Entra ID sends ``"True"``/``"False"`` for booleans."""
    if isinstance(value, str) and value.lower() in _TRUTH:
        return _TRUTH[value.lower()]
    return value


def _split_urn_key(key):
    """``urn:…:enterprise:2.0:User:department`` → ``"department"`` when the
    key is an enterprise attribute written with its URN, else None."""
    if key.lower().startswith(ENTERPRISE_URN.lower() + ":"):
        return key[len(ENTERPRISE_URN) + 1 :]
    return None


def adopt_provisioned_user(document, sources=None):
    """A User document as an identity provider sent it, as the registry
    reads it: unkept core attributes and the enterprise extension dropped,
    the student number and ID number taken from the school's ``sources``
    (``checked_sources``) into our extension, the enterprise ``department``
    kept there (where it has none), ``active`` a boolean. A new document."""
    adopted, extension, enterprise = {}, {}, {}
    for key, value in document.items():
        lowered = key.lower()
        if lowered in _UNKEPT_USER_ATTRIBUTES:
            continue
        if lowered == ENTERPRISE_URN.lower():
            if isinstance(value, dict):
                enterprise.update({k.lower(): v for k, v in value.items()})
            continue
        attribute = _split_urn_key(key)
        if attribute is not None:
            enterprise[attribute.lower()] = value
            continue
        if lowered == STUDENT_URN.lower() and isinstance(value, dict):
            extension = dict(value)
            continue
        adopted[key] = _as_bool(value) if lowered == "active" else value
    given = {
        "extension": None,
        "employeeNumber": enterprise.get("employeenumber"),
        "userName": next(
            (v for k, v in document.items() if k.lower() == "username"), None
        ),
        "externalId": next(
            (v for k, v in document.items() if k.lower() == "externalid"), None
        ),
    }
    for identifier, chosen in checked_sources(sources).items():
        field = _EXTENSION_FIELD[identifier]
        given["extension"] = extension.get(field)
        source = next((s for s in chosen if given[s] not in (None, "")), None)
        if source in (None, "extension"):
            continue
        if source == "userName" and not extension.get(field):
            continue  # the registry's own fallback (student_columns): not copied
        extension[field] = str(given[source])
    for name, field in _ENTERPRISE_KEPT.items():
        value = enterprise.get(name)
        if value not in (None, "") and extension.get(field) in (None, ""):
            extension[field] = str(value)
    given_schemas = document.get("schemas")
    if given_schemas is not None and not isinstance(given_schemas, list):
        return {**adopted, "schemas": given_schemas}  # the model refuses it
    schemas = [
        urn
        for urn in given_schemas or []
        if not (isinstance(urn, str) and urn.lower() == ENTERPRISE_URN.lower())
    ]
    if extension:
        adopted[STUDENT_URN] = extension
        if STUDENT_URN not in schemas:
            schemas.append(STUDENT_URN)
    if "schemas" in document or extension:
        adopted["schemas"] = schemas
    return adopted


def _adopt_operation(operation, sources=None):
    """One PATCH operation of an IdP's, as the registry applies it; None
    when it only touches what the registry does not keep."""
    if not isinstance(operation, dict):
        return operation  # refused by the model, with its own words
    adopted = {
        key: (
            value.lower() if key.lower() == "op" and isinstance(value, str) else value
        )
        for key, value in operation.items()
    }
    op_key = next((k for k in adopted if k.lower() == "op"), "op")
    path_key = next((k for k in adopted if k.lower() == "path"), None)
    value_key = next((k for k in adopted if k.lower() == "value"), "value")
    path = adopted.get(path_key) if path_key else None
    if op_key != "op":
        adopted["op"] = adopted.pop(op_key)
    if path_key and path_key != "path":
        adopted["path"] = adopted.pop(path_key)
    if value_key != "value" and value_key in adopted:
        adopted["value"] = adopted.pop(value_key)
    if isinstance(path, str) and path:
        attribute = _split_urn_key(path)
        if attribute is not None:
            field = _enterprise_field(attribute, sources)
            if field is None:
                return None
            adopted["path"] = f"{STUDENT_URN}:{field}"
            return adopted
        if _root_attribute(path) in _UNKEPT_USER_ATTRIBUTES:
            return None
        if path.lower() == "active" and "value" in adopted:
            adopted["value"] = _as_bool(adopted["value"])
        return adopted
    value = adopted.get("value")
    if isinstance(value, dict):
        kept = adopt_provisioned_user(value, _ONLY_EXTENSION)
        kept.pop("schemas", None)
        if not kept:
            return None
        adopted["value"] = kept
    return adopted


# A PATCH value object names only what changes: nothing is filled from
# other attributes it does not carry.
_ONLY_EXTENSION = {"student_number": ("extension",), "id_number": ("extension",)}


def adopt_provisioned_patch(kind, document, sources=None):
    """A PATCH as an identity provider sent it: ``op`` names in any case;
    for Users, operations on what the registry does not keep dropped and
    enterprise paths moved to our extension. None when nothing is left to
    apply (the PATCH changes nothing the registry keeps)."""
    if not isinstance(document, dict):
        return document
    operations_key = next((k for k in document if k.lower() == "operations"), None)
    operations = document.get(operations_key) if operations_key else None
    if not isinstance(operations, list):
        return document
    adopted_operations = []
    for operation in operations:
        if kind == "User":
            operation = _adopt_operation(operation, sources)
        elif isinstance(operation, dict):
            operation = {
                key: value.lower()
                if key.lower() == "op" and isinstance(value, str)
                else value
                for key, value in operation.items()
            }
        if operation is not None:
            adopted_operations.append(operation)
    if operations and not adopted_operations:
        return None
    adopted = {k: v for k, v in document.items() if k != operations_key}
    adopted["Operations"] = adopted_operations
    return adopted


# -- parsing ------------------------------------------------------------------

_CONTEXTS = {
    "create": Context.RESOURCE_CREATION_REQUEST,
    "replace": Context.RESOURCE_REPLACEMENT_REQUEST,
}


def parse_resource(kind, document, purpose, sources=None):
    """A request body as a resource model (``purpose``: create or replace;
    ``sources``: the school's identifier sources, for Users)."""
    model = MODELS[kind]
    if not isinstance(document, dict):
        raise InvalidRequest(
            "scim_invalid_syntax",
            {"scimType": "invalidSyntax", "scim_detail": "a JSON object is expected"},
        )
    if kind == "User":
        document = adopt_provisioned_user(document, sources)
    try:
        return model.model_validate(document, scim_ctx=_CONTEXTS[purpose])
    except (PydanticValidationError, SCIMException) as exc:
        raise scim_refusal(exc) from None


def parse_patch(kind, document, sources=None):
    """The PATCH as a model; None when, once what identity providers send
    beyond the registry is set aside, nothing is left to apply."""
    document = adopt_provisioned_patch(kind, document, sources)
    if document is None:
        return None
    try:
        return PatchOp[MODELS[kind]].model_validate(
            document, scim_ctx=Context.RESOURCE_PATCH_REQUEST
        )
    except (PydanticValidationError, SCIMException) as exc:
        raise scim_refusal(exc) from None


def apply_patch(patch, resource):
    """Apply a PATCH to a resource model in place; True when it changed
    (``patch`` None: nothing the registry keeps was asked to change)."""
    if patch is None:
        return False
    try:
        return patch.patch(resource)
    except (PydanticValidationError, SCIMException) as exc:
        raise scim_refusal(exc) from None


def replace_checks(new, original):
    """PUT keeps immutable attributes (RFC 7644 §3.5.1)."""
    try:
        new.replace(original)
    except (PydanticValidationError, SCIMException) as exc:
        raise scim_refusal(exc) from None


def parse_filter(kind, text):
    """The parsed filter (scim2-models' grammar, bound to the resource model so
    an unknown attribute or a wrong operator is refused here)."""
    try:
        return ScimFilter[MODELS[kind]](text).ast
    except (PydanticValidationError, SCIMException, ValueError) as exc:
        if isinstance(exc, ValueError) and not isinstance(exc, PydanticValidationError):
            raise InvalidRequest(
                "scim_invalid_filter",
                {"scimType": "invalidFilter", "scim_detail": "the filter is malformed"},
            ) from None
        refusal = scim_refusal(exc)
        refusal.extra["scimType"] = "invalidFilter"
        raise InvalidRequest("scim_invalid_filter", refusal.extra) from None


# -- records <-> resources -----------------------------------------------------


def student_columns(student, today):
    """The columns of a student record from a parsed resource. ``doc`` is
    the resource as the school wrote it minus the ID number; the ID number
    comes back as given under ``id_number`` (sealed by the caller, so the
    school reads back what it wrote) and normalised under ``id_normalised``
    (keyed-hashed for matching; None when it fails its type's rules, which
    ``id_problem`` names)."""
    record = student[StudentRecord] or StudentRecord()
    name = student.name or Name()
    columns = {
        "user_name": student.user_name,
        "external_id": student.external_id,
        "student_number": record.student_number or student.user_name,
        "family_name": name.family_name,
        "given_name": name.given_name,
        "formatted_name": name.formatted,
        "display_name": student.display_name,
        "active": True if student.active is None else student.active,
        "status": record.status or "active",
        "id_type": record.id_type,
        "grade": record.grade,
        "class_name": record.class_name,
        "department": record.department,
        "enrollment_year": record.enrollment_year,
        "id_number": record.id_number or None,
        "id_normalised": None,
        "id_problem": None,
    }
    for attribute, key in (
        ("userName", "user_name"),
        ("studentNumber", "student_number"),
    ):
        # scim2-models takes "" for a required string; a registry record
        # keyed by nothing would match nobody and block the next blank.
        if not (columns[key] or "").strip():
            raise InvalidRequest(
                "scim_invalid_value",
                {"scimType": "invalidValue", "scim_detail": f"{attribute} is empty"},
            )
    columns["name_key"] = comparable_name(full_name(columns))
    if record.id_number:
        number, problem = sealable_id(record.id_type, record.id_number, today)
        columns["id_normalised"] = None if problem else number
        columns["id_problem"] = problem
    stored = student.model_copy(deep=True)
    stored.id = stored.meta = stored.groups = None
    document = stored.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    document.pop("schemas", None)
    if isinstance(document.get(STUDENT_URN), dict):
        document[STUDENT_URN].pop("idNumber", None)
        document[STUDENT_URN].pop("schemas", None)
    columns["doc"] = document
    return columns


def full_name(columns):
    """The name a registry record is matched on: ``name.formatted``, else
    family + given, else ``displayName``."""
    if columns.get("formatted_name"):
        return columns["formatted_name"]
    joined = (columns.get("family_name") or "") + (columns.get("given_name") or "")
    return joined or columns.get("display_name") or ""


def etag(version):
    return f'W/"{version}"'


def _scim_time(moment):
    """A timestamp as scim2-models writes it (UTC as ``Z``), so a document
    built here is already what ``render`` would answer."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _meta(kind, row, base_url):
    return {
        "resourceType": kind,
        "created": _scim_time(row["created_at"]),
        "lastModified": _scim_time(row["updated_at"]),
        "location": f"{base_url}/{kind}s/{row['id']}",
        "version": etag(row["version"]),
    }


def student_document(row, groups, base_url, id_number=None):
    """The full SCIM representation of a stored student (before attribute
    selection): what the school wrote, our id, meta and class memberships;
    ``groups``: ``[(class id, display name)]``; ``id_number``: the opened
    seal, for the owning school only."""
    document = {key: value for key, value in (row["doc"] or {}).items()}
    schemas = [str(Student.__schema__)]
    extension = dict(document.get(STUDENT_URN) or {})
    if id_number:
        extension["idNumber"] = id_number
    if extension:
        document[STUDENT_URN] = extension
        schemas.append(STUDENT_URN)
    else:
        document.pop(STUDENT_URN, None)
    document["schemas"] = schemas
    document["id"] = str(row["id"])
    if groups:
        document["groups"] = [
            {
                "value": str(group_id),
                "$ref": f"{base_url}/Groups/{group_id}",
                "display": display,
                "type": "direct",
            }
            for group_id, display in groups
        ]
    document["meta"] = _meta("User", row, base_url)
    return document


def group_columns(group):
    stored = group.model_copy(deep=True)
    stored.id = stored.meta = stored.members = None
    return {
        "display_name": group.display_name,
        "external_id": group.external_id,
        "members": [
            (member.value, member.display, member.type)
            for member in group.members or ()
        ],
        "doc": stored.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE),
    }


def group_document(row, members, base_url):
    """``members``: ``[(student id, display, type)]`` as the school wrote
    them (display and type are the school's words)."""
    document = dict(row["doc"] or {})
    document["schemas"] = [str(Group.__schema__)]
    document["id"] = str(row["id"])
    document["displayName"] = row["display_name"]
    if row["external_id"] is not None:
        document["externalId"] = row["external_id"]
    if members:
        document["members"] = [
            {
                "value": str(student_id),
                "$ref": f"{base_url}/Users/{student_id}",
                **({"type": member_type} if member_type else {}),
                **({"display": display} if display else {}),
            }
            for student_id, display, member_type in members
        ]
    else:
        document.pop("members", None)
    document["meta"] = _meta("Group", row, base_url)
    return document


def as_model(kind, document):
    """A stored representation as a model (to PATCH or to compare on PUT)."""
    return MODELS[kind].model_validate(
        document, scim_ctx=Context.RESOURCE_QUERY_RESPONSE
    )


def render(kind, document, attributes=None, excluded=None):
    """The answer for a representation, honouring ``attributes`` and
    ``excludedAttributes`` (RFC 7644 §3.9)."""
    model = as_model(kind, document)
    try:
        parameters = None
        if attributes or excluded:
            parameters = ResponseParameters[MODELS[kind]](
                attributes=attributes or None, excluded_attributes=excluded or None
            )
        return model.model_dump(
            scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=parameters
        )
    except (PydanticValidationError, SCIMException, ValueError) as exc:
        raise scim_refusal(exc) from None
