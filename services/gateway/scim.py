"""SCIM 2.0 (RFC 7644) for school systems: ``/scim/v2/…`` with the school's
API token. Mixed into ``GatewayService``; the resources and their rules are
registry_sync's (``scim_*`` RPCs), this module speaks the protocol: the
``application/scim+json`` media type, ETag / If-Match / Location headers,
query parameters, and errors as SCIM Error documents (``scimType``) that
still carry our stable ``code`` and messages."""

import json
import logging

from werkzeug.wrappers import Response

from services.common.contract.errors import (
    InvalidRequest,
    NotFound,
    find_nul,
)
from services.gateway.auth import school_credentials
from services.gateway.http import (
    ErrorRenderer,
    endpoint,
    read_body,
    register_renderer,
)
from services.gateway.messages import message_for
from services.gateway.school_schemas import (
    ScimListSchema,
    ScimPatchSchema,
    ScimResourceSchema,
)

__all__ = ["ScimEndpoints", "scim_error_response", "SCIM_JSON"]

log = logging.getLogger(__name__)

SCIM_JSON = "application/scim+json; charset=utf-8"
ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"
RESOURCE_ID_PATH = {
    "id": {"type": "string", "maxLength": 64, "pattern": "^[^\\u0000/]+$"}
}


class ScimErrors(ErrorRenderer):
    """SCIM routes (and any request under ``/scim/`` no route matched) answer
    refusals as SCIM Error documents: a SCIM client parses only those (RFC
    7644 §3.12)."""

    media_type = "application/scim+json"
    schema = "ScimError"

    def render(self, status, code, request, extra=None, config=None, request_id=None):
        return scim_error_response(status, code, request, extra)

    def claims(self, request):
        return request.path.startswith("/scim/")

    def allowed_methods(self, request, methods):
        if request.path.endswith("/.search"):
            # Also shaped like /{id}, but only a search (RFC 7644 §3.4.3).
            return ["POST"]
        return methods


SCIM_ERRORS = register_renderer(ScimErrors())
SCIM = {
    "tags": ("school systems (SCIM)",),
    "auth": "school",
    "media_type": "application/scim+json",
    "renderer": SCIM_ERRORS,
}


def _query(name, schema, description):
    return {
        "in": "query",
        "name": name,
        "required": False,
        "schema": schema,
        "description": description,
    }


_TEXT = {"type": "string", "maxLength": 2000, "pattern": "^[^\\u0000]*$"}
SELECTION_PARAMETERS = (
    _query("attributes", _TEXT, "comma-separated attributes to return"),
    _query("excludedAttributes", _TEXT, "comma-separated attributes to leave out"),
)
LIST_PARAMETERS = SELECTION_PARAMETERS + (
    _query("filter", _TEXT, 'e.g. userName eq "2024001" or meta.lastModified gt "…"'),
    _query("startIndex", {"type": "integer"}, "1-based"),
    _query("count", {"type": "integer"}, "page size, at most 200"),
    _query("sortBy", _TEXT, "attribute to sort on"),
    _query(
        "sortOrder",
        {"type": "string", "enum": ["ascending", "descending"]},
        "default ascending",
    ),
)
IF_MATCH = (
    {
        "in": "header",
        "name": "If-Match",
        "required": False,
        "schema": {"type": "string", "maxLength": 64},
        "description": 'the ETag (meta.version) last read, e.g. W/"3"; 412 if stale',
    },
)
ERRORS = (400, 401, 404, 503, 504)
WRITE_ERRORS = (400, 401, 404, 409, 412, 503, 504)


def scim_error_response(status, code, request=None, extra=None):
    """A SCIM Error document (RFC 7644 §3.12) with our ``code`` and messages."""
    extra = dict(extra or {})
    zh, en = message_for(code)
    # RFC 7644's Error has no room for more members (strict clients refuse
    # them), so the stable code leads the detail and is also a header.
    message = f"{zh} / {en}"
    if extra.get("scim_detail"):
        message = f"{message} ({extra['scim_detail']})"
    body = {
        "schemas": [ERROR_URN],
        "status": str(status),
        "detail": f"[{code}] {message}",
    }
    scim_type = extra.get("scimType")
    if scim_type:
        body["scimType"] = scim_type
    headers = {"X-Error-Code": code}
    if status == 429 and extra.get("retry_after") is not None:
        headers["Retry-After"] = str(int(extra["retry_after"]))
    return Response(
        json.dumps(body, ensure_ascii=False, default=str),
        status=status,
        headers=headers,
        content_type=SCIM_JSON,
    )


def _scim_response(status, body=None, headers=None):
    if status == 204:
        return Response(status=204, headers=headers)
    return Response(
        json.dumps(body, ensure_ascii=False, default=str),
        status=status,
        headers=headers,
        content_type=SCIM_JSON,
    )


def _split(value):
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _integer(request, name):
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequest(
            "scim_invalid_value",
            {"scimType": "invalidValue", "scim_detail": f"{name} must be an integer"},
        ) from None


def _checked_text(request, name):
    value = request.args.get(name)
    if value is not None and ("\x00" in value or len(value) > 2000):
        raise InvalidRequest(
            "scim_invalid_value",
            {"scimType": "invalidValue", "scim_detail": f"{name} is not valid"},
        )
    return value


def _document(request):
    """The JSON body (SCIM or plain JSON media type)."""
    try:
        document = json.loads(read_body(request) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(
            "scim_invalid_syntax",
            {"scimType": "invalidSyntax", "scim_detail": "the body is not JSON"},
        ) from None
    if find_nul(document):
        raise InvalidRequest(
            "scim_invalid_value",
            {"scimType": "invalidValue", "scim_detail": "NUL is not allowed"},
        )
    if not isinstance(document, dict):
        raise InvalidRequest(
            "scim_invalid_syntax",
            {"scimType": "invalidSyntax", "scim_detail": "a JSON object is expected"},
        )
    return document


SEARCH_URN = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def _search_parameters(body):
    """A SearchRequest body as scim_list parameters (400 when malformed)."""

    def refuse(detail):
        return InvalidRequest(
            "scim_invalid_value", {"scimType": "invalidValue", "scim_detail": detail}
        )

    schemas = body.get("schemas")
    if not isinstance(schemas, list) or SEARCH_URN not in schemas:
        raise InvalidRequest(
            "scim_invalid_syntax",
            {
                "scimType": "invalidSyntax",
                "scim_detail": f"schemas must name {SEARCH_URN}",
            },
        )

    def names(key):
        value = body.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            return _split(value)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [v.strip() for v in value if v.strip()]
        raise refuse(f"{key} must be a list of attribute names")

    def integer(key, default):
        value = body.get(key, default)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise refuse(f"{key} must be an integer")

    def text(key):
        value = body.get(key)
        if value is None or (isinstance(value, str) and len(value) <= 2000):
            return value or None
        raise refuse(f"{key} must be a string")

    order = body.get("sortOrder") or "ascending"
    if order not in ("ascending", "descending"):
        raise refuse("sortOrder is not valid")
    return {
        "filter": text("filter"),
        "sort_by": text("sortBy"),
        "sort_order": order,
        "start_index": integer("startIndex", 1) or 1,
        "count": integer("count", None),
        "attributes": names("attributes"),
        "excluded_attributes": names("excludedAttributes"),
    }


class ScimEndpoints:
    """Needs ``school_auth``, ``config`` and the
    ``registry_sync`` RPC proxy."""

    def _scim_base(self, request):
        configured = (self.config.get("GATEWAY_PUBLIC_URL") or "").rstrip("/")
        return (configured or request.host_url.rstrip("/")) + "/scim/v2"

    def _selection(self, request):
        return {
            "attributes": _split(_checked_text(request, "attributes")),
            "excluded_attributes": _split(_checked_text(request, "excludedAttributes")),
        }

    def _if_match(self, request):
        value = request.headers.get("If-Match") or None  # empty: no condition
        if value is not None and (len(value) > 64 or "\x00" in value):
            raise InvalidRequest(
                "scim_invalid_value",
                {"scimType": "invalidValue", "scim_detail": "If-Match is not valid"},
            )
        return value

    def _resource_answer(self, answer, created=False):
        headers = {"ETag": answer["etag"]}
        if answer.get("problems"):
            # Kept-but-flawed values (see registry_sync/scim.py): attribute=rule.
            headers["X-Registry-Problems"] = ", ".join(
                f"{attribute}={code}" for attribute, code in answer["problems"].items()
            )
        document = answer["document"]
        if created:
            headers["Location"] = document.get("meta", {}).get("location", "")
        return _scim_response(answer["status"], document, headers)

    # -- discovery ---------------------------------------------------------------
    def _discovery(self, request):
        self.school_auth(request, "scim.discovery")
        return self.registry_sync.scim_discovery({"base_url": self._scim_base(request)})

    def _list_of(self, resources):
        return {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": len(resources),
            "startIndex": 1,
            "itemsPerPage": len(resources),
            "Resources": resources,
        }

    @endpoint(
        "GET",
        "/scim/v2/ServiceProviderConfig",
        summary="SCIM service provider configuration",
        response_schema=ScimResourceSchema,
        errors=(401, 503, 504),
        **SCIM,
    )
    def scim_service_provider_config(self, request):
        """`curl -s localhost:8000/scim/v2/ServiceProviderConfig -H "Authorization: Bearer $SCHOOL_TOKEN"`"""
        return _scim_response(200, self._discovery(request)["service_provider_config"])

    @endpoint(
        "GET",
        "/scim/v2/Schemas",
        summary="SCIM schemas: core User subset, the student extension, Group",
        response_schema=ScimListSchema,
        errors=(401, 503, 504),
        **SCIM,
    )
    def scim_schemas(self, request):
        return _scim_response(200, self._list_of(self._discovery(request)["schemas"]))

    @endpoint(
        "GET",
        "/scim/v2/Schemas/{id}",
        summary="One SCIM schema by URN",
        response_schema=ScimResourceSchema,
        errors=ERRORS,
        path_schemas={"id": {"type": "string", "maxLength": 200}},
        **SCIM,
    )
    def scim_schema(self, request, id):
        for schema in self._discovery(request)["schemas"]:
            if schema["id"] == id:
                return _scim_response(200, schema)
        raise NotFound("scim_resource_not_found")

    @endpoint(
        "GET",
        "/scim/v2/ResourceTypes",
        summary="SCIM resource types: User (students), Group (classes)",
        response_schema=ScimListSchema,
        errors=(401, 503, 504),
        **SCIM,
    )
    def scim_resource_types(self, request):
        found = self._discovery(request)["resource_types"]
        return _scim_response(200, self._list_of(found))

    @endpoint(
        "GET",
        "/scim/v2/ResourceTypes/{id}",
        summary="One SCIM resource type",
        response_schema=ScimResourceSchema,
        errors=ERRORS,
        path_schemas={"id": {"type": "string", "maxLength": 64}},
        **SCIM,
    )
    def scim_resource_type(self, request, id):
        for resource_type in self._discovery(request)["resource_types"]:
            if resource_type["id"] == id:
                return _scim_response(200, resource_type)
        raise NotFound("scim_resource_not_found")

    # -- resources ---------------------------------------------------------------
    def _as_school(self, request, action, call, build):
        """``call`` (a registry_sync SCIM RPC) with what ``build()`` makes
        of the request; registry_sync checks the token and audits ``action``
        in the same hop. A request the gateway itself refuses (a bad body or
        header) is first authenticated on its own, so a wrong token is told
        so before a bad body is."""
        credentials = school_credentials(request, action)
        try:
            payload = build()
        except InvalidRequest:
            self.school_auth(request, action)
            raise
        return call({**payload, **credentials})

    def _scim_list(self, request, kind, search=False):
        """A page of resources; ``search``: asked by a POST /.search body
        (RFC 7644 §3.4.3) instead of the query string."""

        def query():
            if search:
                return {
                    "kind": kind,
                    "base_url": self._scim_base(request),
                    **_search_parameters(_document(request)),
                }
            order = request.args.get("sortOrder") or "ascending"
            if order not in ("ascending", "descending"):
                raise InvalidRequest(
                    "scim_invalid_value",
                    {
                        "scimType": "invalidValue",
                        "scim_detail": "sortOrder is not valid",
                    },
                )
            return {
                "kind": kind,
                "base_url": self._scim_base(request),
                "filter": _checked_text(request, "filter") or None,
                "start_index": _integer(request, "startIndex") or 1,
                "count": _integer(request, "count"),
                "sort_by": _checked_text(request, "sortBy") or None,
                "sort_order": order,
                **self._selection(request),
            }

        action = f"scim.{kind.lower()}s.list"
        answer = self._as_school(request, action, self.registry_sync.scim_list, query)
        return _scim_response(200, answer)

    def _scim_create(self, request, kind):
        answer = self._as_school(
            request,
            f"scim.{kind.lower()}s.create",
            self.registry_sync.scim_create,
            lambda: {
                "kind": kind,
                "base_url": self._scim_base(request),
                "document": _document(request),
                **self._selection(request),
            },
        )
        return self._resource_answer(answer, created=True)

    def _scim_one(self, request, kind, resource_id, action):
        def resource():
            payload = {
                "kind": kind,
                "id": resource_id,
                "base_url": self._scim_base(request),
                "if_match": self._if_match(request),
                **self._selection(request),
            }
            if action in ("replace", "patch"):
                payload["document"] = _document(request)
            return payload

        # action is get, replace, patch or delete: registry_sync's scim_<action>.
        call = getattr(self.registry_sync, f"scim_{action}")
        answer = self._as_school(
            request, f"scim.{kind.lower()}s.{action}", call, resource
        )
        if action == "delete":
            return _scim_response(204)
        return self._resource_answer(answer)

    @endpoint(
        "GET",
        "/scim/v2/Users",
        summary="List or filter students",
        response_schema=ScimListSchema,
        errors=ERRORS,
        parameters=LIST_PARAMETERS,
        **SCIM,
    )
    def scim_list_users(self, request):
        """`curl -s 'localhost:8000/scim/v2/Users?filter=userName%20eq%20%222024001%22'
        -H "Authorization: Bearer $SCHOOL_TOKEN"`"""
        return self._scim_list(request, "User")

    @endpoint(
        "POST",
        "/scim/v2/.search",
        summary="Search students and classes together (RFC 7644 §3.4.3)",
        request_schema=ScimResourceSchema,
        response_schema=ScimListSchema,
        errors=ERRORS,
        **SCIM,
    )
    def scim_search_all(self, request):
        """Users first, then Groups, paged as one list (registry_sync pages
        across the types). A filter naming an attribute only one type has
        matches nothing of the other (§3.4.2.1)."""
        answer = self._as_school(
            request,
            "scim.search",
            self.registry_sync.scim_search,
            lambda: {
                "base_url": self._scim_base(request),
                **_search_parameters(_document(request)),
            },
        )
        return _scim_response(200, answer)

    @endpoint(
        "POST",
        "/scim/v2/Users/.search",
        summary="Search students (a SearchRequest body, RFC 7644 §3.4.3)",
        request_schema=ScimResourceSchema,
        response_schema=ScimListSchema,
        errors=ERRORS,
        **SCIM,
    )
    def scim_search_users(self, request):
        return self._scim_list(request, "User", search=True)

    @endpoint(
        "POST",
        "/scim/v2/Groups/.search",
        summary="Search classes (a SearchRequest body)",
        request_schema=ScimResourceSchema,
        response_schema=ScimListSchema,
        errors=ERRORS,
        **SCIM,
    )
    def scim_search_groups(self, request):
        return self._scim_list(request, "Group", search=True)

    @endpoint(
        "POST",
        "/scim/v2/Users",
        summary="Create a student",
        request_schema=ScimResourceSchema,
        response_schema=ScimResourceSchema,
        status=201,
        errors=(400, 401, 409, 503, 504),
        parameters=SELECTION_PARAMETERS,
        **SCIM,
    )
    def scim_create_user(self, request):
        """`curl -s localhost:8000/scim/v2/Users -H "Authorization: Bearer $SCHOOL_TOKEN"
        -H 'Content-Type: application/scim+json' -d '{"schemas":
        ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "2024001",
        "name": {"formatted": "张三"}}'` → 201 with `ETag` and `Location`."""
        return self._scim_create(request, "User")

    @endpoint(
        "GET",
        "/scim/v2/Users/{id}",
        summary="One student",
        response_schema=ScimResourceSchema,
        errors=ERRORS,
        path_schemas=RESOURCE_ID_PATH,
        parameters=SELECTION_PARAMETERS,
        **SCIM,
    )
    def scim_get_user(self, request, id):
        return self._scim_one(request, "User", id, "get")

    @endpoint(
        "PUT",
        "/scim/v2/Users/{id}",
        summary="Replace a student",
        request_schema=ScimResourceSchema,
        response_schema=ScimResourceSchema,
        errors=WRITE_ERRORS,
        path_schemas=RESOURCE_ID_PATH,
        parameters=SELECTION_PARAMETERS + IF_MATCH,
        **SCIM,
    )
    def scim_replace_user(self, request, id):
        return self._scim_one(request, "User", id, "replace")

    @endpoint(
        "PATCH",
        "/scim/v2/Users/{id}",
        summary="Patch a student (add/replace/remove, paths with value filters)",
        request_schema=ScimPatchSchema,
        response_schema=ScimResourceSchema,
        errors=WRITE_ERRORS,
        path_schemas=RESOURCE_ID_PATH,
        parameters=SELECTION_PARAMETERS + IF_MATCH,
        **SCIM,
    )
    def scim_patch_user(self, request, id):
        return self._scim_one(request, "User", id, "patch")

    @endpoint(
        "DELETE",
        "/scim/v2/Users/{id}",
        summary="Delete a student record",
        status=204,
        errors=(400, 401, 404, 412, 503, 504),
        path_schemas=RESOURCE_ID_PATH,
        parameters=IF_MATCH,
        **SCIM,
    )
    def scim_delete_user(self, request, id):
        return self._scim_one(request, "User", id, "delete")

    @endpoint(
        "GET",
        "/scim/v2/Groups",
        summary="List or filter classes",
        response_schema=ScimListSchema,
        errors=ERRORS,
        parameters=LIST_PARAMETERS,
        **SCIM,
    )
    def scim_list_groups(self, request):
        return self._scim_list(request, "Group")

    @endpoint(
        "POST",
        "/scim/v2/Groups",
        summary="Create a class (members: students of this school)",
        request_schema=ScimResourceSchema,
        response_schema=ScimResourceSchema,
        status=201,
        errors=(400, 401, 409, 503, 504),
        parameters=SELECTION_PARAMETERS,
        **SCIM,
    )
    def scim_create_group(self, request):
        return self._scim_create(request, "Group")

    @endpoint(
        "GET",
        "/scim/v2/Groups/{id}",
        summary="One class",
        response_schema=ScimResourceSchema,
        errors=ERRORS,
        path_schemas=RESOURCE_ID_PATH,
        parameters=SELECTION_PARAMETERS,
        **SCIM,
    )
    def scim_get_group(self, request, id):
        return self._scim_one(request, "Group", id, "get")

    @endpoint(
        "PUT",
        "/scim/v2/Groups/{id}",
        summary="Replace a class",
        request_schema=ScimResourceSchema,
        response_schema=ScimResourceSchema,
        errors=WRITE_ERRORS,
        path_schemas=RESOURCE_ID_PATH,
        parameters=SELECTION_PARAMETERS + IF_MATCH,
        **SCIM,
    )
    def scim_replace_group(self, request, id):
        return self._scim_one(request, "Group", id, "replace")

    @endpoint(
        "PATCH",
        "/scim/v2/Groups/{id}",
        summary="Patch a class (e.g. add or remove members)",
        request_schema=ScimPatchSchema,
        response_schema=ScimResourceSchema,
        errors=WRITE_ERRORS,
        path_schemas=RESOURCE_ID_PATH,
        parameters=SELECTION_PARAMETERS + IF_MATCH,
        **SCIM,
    )
    def scim_patch_group(self, request, id):
        return self._scim_one(request, "Group", id, "patch")

    @endpoint(
        "DELETE",
        "/scim/v2/Groups/{id}",
        summary="Delete a class",
        status=204,
        errors=(400, 401, 404, 412, 503, 504),
        path_schemas=RESOURCE_ID_PATH,
        parameters=IF_MATCH,
        **SCIM,
    )
    def scim_delete_group(self, request, id):
        return self._scim_one(request, "Group", id, "delete")
