"""OpenAPI 3 for the gateway, generated with apispec from the marshmallow
schemas and the ``endpoint`` declarations, and a plain HTML page to read it
(no CDN: the docs page works on a closed network)."""

import html
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from services.common.contract.vocabulary import DEVICE_ID_PATTERN
from services.gateway.auth import SESSION_COOKIE
from services.gateway.schemas import ProblemSchema, ScimErrorSchema

__all__ = ["build_spec", "render_docs"]

_STATUS_TEXT = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}


def _declared_endpoints(service_cls):
    for attr in dir(service_cls):
        fn = getattr(service_cls, attr)
        meta = getattr(fn, "openapi", None)
        if meta:
            yield meta


# PostgreSQL text cannot hold NUL, and every boundary refuses it (400): said
# in the contract for every free-text string.
NO_NUL_PATTERN = "^[^\\u0000]*$"


def _no_nul(converter, field, ret, **kwargs):
    if ret.get("type") == "string" and not {"pattern", "format", "enum"} & set(ret):
        return {"pattern": NO_NUL_PATTERN}
    return {}


def build_spec(service_cls, server_url=None):
    marshmallow_plugin = MarshmallowPlugin()
    spec = APISpec(
        title="Student account self-service gateway",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[marshmallow_plugin],
        info={
            "description": "HTTP surface of the student-account platform. "
            "Errors are RFC 9457 problem+json with a stable `code`."
        },
        servers=[{"url": server_url}] if server_url else [],
    )
    marshmallow_plugin.converter.add_attribute_function(_no_nul)
    spec.components.schema("Problem", schema=ProblemSchema)
    spec.components.schema("ScimError", schema=ScimErrorSchema)
    spec.components.security_scheme("session", {"type": "http", "scheme": "bearer"})
    # A page login (``web_session: true``) sets this HttpOnly cookie instead;
    # state-changing requests carried by it also need ``X-CSRF-Token``.
    spec.components.security_scheme(
        "web_session",
        {
            "type": "apiKey",
            "in": "cookie",
            "name": SESSION_COOKIE,
            "description": "the session cookie of a page login",
        },
    )
    spec.components.security_scheme(
        "internal",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "INTERNAL_API_TOKEN of other platform systems",
        },
    )
    spec.components.security_scheme(
        "school",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "a school's API token (one per school, scoped to it)",
        },
    )
    for meta in sorted(
        _declared_endpoints(service_cls), key=lambda m: (m["path"], m["method"])
    ):
        operation = {
            "summary": meta["summary"],
            "tags": meta["tags"],
            "parameters": [
                {
                    "in": "header",
                    "name": "X-Request-Id",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "Echoed back; generated when absent.",
                }
            ],
            "responses": {},
        }
        for name in re.findall(r"\{(\w+)\}", meta["path"]):
            operation["parameters"].append(
                {
                    "in": "path",
                    "name": name,
                    "required": True,
                    "schema": meta["path_schemas"].get(
                        name, {"type": "string", "pattern": NO_NUL_PATTERN}
                    ),
                }
            )
        if meta["device_header"]:
            operation["parameters"].append(
                {
                    "in": "header",
                    "name": "X-Device-Id",
                    "required": meta["device_header"] == "required",
                    "schema": {"type": "string", "pattern": DEVICE_ID_PATTERN},
                    "description": "The app's device id; a session works only from it.",
                }
            )
        operation["parameters"].extend(meta.get("parameters", ()))
        if meta["description"]:
            operation["description"] = meta["description"]
        if meta["auth"]:
            operation["security"] = [{meta["auth"]: []}]
            if meta["auth"] == "session":  # either the bearer token or the cookie
                operation["security"].append({"web_session": []})
        if meta["request_schema"] is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {meta["media_type"]: {"schema": meta["request_schema"]}},
            }
        if meta.get("request_body"):
            operation["requestBody"] = meta["request_body"]
        ok = {"description": _STATUS_TEXT.get(meta["status"], "OK")}
        if meta["response_schema"] is not None:
            ok["content"] = {meta["media_type"]: {"schema": meta["response_schema"]}}
        if meta.get("links"):
            ok["links"] = {name: _link(**link) for name, link in meta["links"].items()}
        operation["responses"][str(meta["status"])] = ok
        errors = list(meta["errors"] or (400,))
        if meta["device_header"] and 400 not in errors:
            errors.append(400)  # a malformed X-Device-Id
        if (
            meta["auth"] == "session"
            and meta["method"] not in ("get", "head")
            and 403 not in errors
        ):
            errors.append(403)  # carried by the page cookie without its CSRF token
        has_body = meta["method"] in ("post", "put", "patch") or meta.get(
            "request_body"
        )
        if has_body:
            # One table of limits (services.gateway.http.BODY_LIMITS).
            operation["x-body-limit"] = meta["body_limit"]
            if 413 not in errors:
                errors.append(413)
        for status in errors:
            operation["responses"][str(status)] = {
                "description": "Problem details"
                if meta["error_schema"] == "Problem"
                else "SCIM error",
                "content": {meta["error_media_type"]: {"schema": meta["error_schema"]}},
            }
        if any(p.get("in") == "query" for p in meta["parameters"]):
            # Refused by the HTTP server before routing, with an empty body.
            operation["responses"]["414"] = {
                "description": "URI too long: the request line is over 8 KiB"
            }
        spec.path(path=meta["path"], operations={meta["method"]: operation})
    document = spec.to_dict()
    _link_created_resources(document)
    # Rules across fields that marshmallow checks in @validates_schema and
    # apispec cannot see: each schema publishes its own as ``openapi_extra``.
    components = document.get("components", {}).get("schemas", {})
    for meta in _declared_endpoints(service_cls):
        for schema in (meta["request_schema"], meta["response_schema"]):
            extra = getattr(schema, "openapi_extra", None)
            name = getattr(schema, "__name__", "").removesuffix("Schema")
            if extra and name in components:
                components[name].update(extra)
    return document


def _operation_ref(method, path):
    return (
        "#/paths/" + path.replace("~", "~0").replace("/", "~1") + f"/{method.lower()}"
    )


def _link(target, parameters=None, requestBody=None, description=None, **extensions):  # noqa: N803
    link = {"operationRef": _operation_ref(*target)}
    link.update(extensions)  # x-… extension members, as OpenAPI allows
    if parameters:
        link["parameters"] = dict(parameters)
    if requestBody is not None:
        link["requestBody"] = requestBody
    if description:
        link["description"] = description
    return link


def _link_created_resources(document):
    """OpenAPI links from a ``201`` of ``POST /things`` to every operation on
    ``/things/{id}``, with the ``id`` it answered (a client — or schemathesis'
    stateful phase — follows them instead of guessing ids)."""
    paths = document.get("paths", {})
    for path, operations in paths.items():
        created = operations.get("post", {}).get("responses", {}).get("201")
        item_path = f"{path}/{{id}}"
        if created is None or item_path not in paths:
            continue
        links = created.setdefault("links", {})
        for method, operation in paths[item_path].items():
            name = f"{method.capitalize()}{operation.get('operationId', '') or 'Item'}"
            links[name] = _link((method, item_path), {"id": "$response.body#/id"})


def render_docs(spec):
    """A readable page of every operation in ``spec``."""
    rows = []
    for path, operations in spec.get("paths", {}).items():
        for method, op in operations.items():
            statuses = ", ".join(op.get("responses", {}))
            rows.append(
                f"<tr><td><code>{html.escape(method.upper())}</code></td>"
                f"<td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op.get('summary', ''))}</td>"
                f"<td>{html.escape(statuses)}</td></tr>"
            )
    title = html.escape(spec["info"]["title"])
    return (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        f"<title>{title} — API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em .8em;"
        "border-bottom:1px solid #ddd;text-align:left}</style></head><body>"
        f"<h1>{title}</h1><p>接口文档 / API reference. Machine-readable: "
        "<a href='/openapi.json'>/openapi.json</a></p>"
        "<table><thead><tr><th>Method</th><th>Path</th><th>Summary</th>"
        f"<th>Responses</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</body></html>"
    )
