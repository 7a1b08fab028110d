"""The gateway's HTTP core, which knows no surface: JSON in and out,
``X-Request-Id`` on every response, never a stack trace, and every refusal
rendered by the error renderer of the route that refused it.

``endpoint(method, path, ...)`` declares a route (OpenAPI-style ``{name}``
placeholders) and records what ``services.gateway.openapi`` publishes.
Handlers return ``(status, body)`` or ``(status, headers, body)`` with a
dict/list body, or a werkzeug ``Response``.

Errors: ``status_of(exc)`` is the one place an exception becomes a status.
A route names its ``renderer`` (``PROBLEM_DETAILS`` — RFC 9457 — unless it
says otherwise); a surface with its own error format registers a renderer
(``register_renderer``) that also claims the requests no route matched
(SCIM clients get SCIM errors, browsers an HTML page).
"""

import ipaddress
import json
import logging
import re
from functools import cache, partial

from eventlet.event import Event
from marshmallow import EXCLUDE, ValidationError
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from services.common.contract.errors import (
    Conflict,
    DeadlineExceeded,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    RuleViolation,
    ServiceError,
    ServiceUnavailable,
    Throttled,
    Unauthenticated,
    find_nul,
)
from services.common.plumbing.context import REQUEST_ID_KEY, clean_request_id
from services.common.plumbing.rpc import check_call_signature
from services.gateway.messages import MESSAGES, message_for

NUL_MESSAGE = "must not contain the NUL character"

__all__ = [
    "BODY_LIMITS",
    "ErrorRenderer",
    "PROBLEM_DETAILS",
    "register_renderer",
    "status_of",
    "query_int",
    "PAGE_PARAMETERS",
    "MAX_JSON_DEPTH",
    "endpoint",
    "problem_response",
    "json_response",
    "load_body",
    "load_query",
    "read_body",
    "client_ip",
    "forwarded_client",
    "reshape",
    "STATUS_BY_ERROR",
]

log = logging.getLogger(__name__)

JSON = "application/json; charset=utf-8"
PROBLEM_JSON = "application/problem+json; charset=utf-8"

# Most specific first: the first isinstance match wins.
STATUS_BY_ERROR = (
    (InvalidRequest, 400),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PreconditionFailed, 412),
    (PayloadTooLarge, 413),
    (RuleViolation, 422),
    (Throttled, 429),
    (ServiceUnavailable, 503),
    (DeadlineExceeded, 504),
    (ServiceError, 500),
)


def status_of(exc):
    """The HTTP status of a refusal (500 for anything not a ``ServiceError``)."""
    return next((s for cls, s in STATUS_BY_ERROR if isinstance(exc, cls)), 500)


# Every route's body limit, in one place (published in the OpenAPI document
# as x-body-limit and a documented 413): checked from Content-Length before a
# byte is read, and again while a chunked body streams in. The photo and the
# roster routes carry a file in a multipart body: their limit is the file's
# own plus room for the multipart framing.
_MULTIPART_SLACK = 64 * 1024
BODY_LIMITS = {
    "json": 64 * 1024,  # every JSON request body: forms, SCIM, batches
    "batch": 4 * 1024 * 1024,  # pushed enrolments and change windows (10k items)
    "photo": 5 * 1024 * 1024 + _MULTIPART_SLACK,  # duplicate-ID photo
    "roster": 20 * 1024 * 1024 + _MULTIPART_SLACK,  # a OneRoster zip
}
# Deeper JSON is refused (400 json_too_deep) before it is parsed: nothing
# the platform accepts nests beyond a few levels, and a parser's recursion
# must not be the limit.
MAX_JSON_DEPTH = 32


def json_depth_exceeds(raw, limit=MAX_JSON_DEPTH):
    """Does this JSON text open more than ``limit`` nested arrays/objects?
    One pass over the bytes, strings skipped; no parsing."""
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def read_body(request, json_text=True):
    """The request body within the route's limit (413 beyond it, even when
    no Content-Length announced it); a JSON one's nesting checked."""
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise PayloadTooLarge(
            "payload_too_large", {"limit": request.max_content_length}
        ) from None
    if json_text and json_depth_exceeds(raw):
        raise InvalidRequest("json_too_deep", {"max_depth": MAX_JSON_DEPTH})
    return raw


def _prefers_english(request):
    accept = (request.headers.get("Accept-Language") or "") if request else ""
    return accept.lower().startswith("en")


def json_response(status, body, headers=None):
    return Response(
        json.dumps(body, ensure_ascii=False, default=str),
        status=status,
        headers=headers,
        content_type=JSON,
    )


def problem_response(status, code, request=None, extra=None):
    """An RFC 9457 body: type/title/status/code/detail plus client data."""
    zh, en = message_for(code)
    body = {
        "type": f"urn:problem:{code}",
        "title": en,
        "status": status,
        "code": code,
        "detail": en if _prefers_english(request) else zh,
        "message_zh": zh,
        "message_en": en,
    }
    for key, value in (extra or {}).items():
        body.setdefault(key, value)
    headers = {}
    if status == 429 and body.get("retry_after") is not None:
        headers["Retry-After"] = str(int(body["retry_after"]))
    response = Response(
        json.dumps(body, ensure_ascii=False, default=str),
        status=status,
        headers=headers,
        content_type=PROBLEM_JSON,
    )
    return response


class ErrorRenderer:
    """How a surface answers a refusal. ``render`` builds the response;
    ``claims`` says whether a request no route matched is this surface's;
    ``allowed_methods`` may adjust a 405's ``Allow`` list. ``media_type``
    and ``schema`` are what the OpenAPI document says error answers are."""

    media_type = "application/problem+json"
    schema = "Problem"

    def render(self, status, code, request, extra=None, config=None, request_id=None):
        raise NotImplementedError

    def claims(self, request):
        return False

    def allowed_methods(self, request, methods):
        return methods


class ProblemDetails(ErrorRenderer):
    """RFC 9457 problem details: the default for every route."""

    def render(self, status, code, request, extra=None, config=None, request_id=None):
        return problem_response(status, code, request, extra)

    def claims(self, request):
        return True


PROBLEM_DETAILS = ProblemDetails()
# Asked in order for requests no route matched; the default comes last.
_RENDERERS = []


def register_renderer(renderer):
    """A surface's error renderer, asked before the default for requests
    no route matched."""
    _RENDERERS.append(renderer)
    return renderer


def renderer_for(request):
    return next((r for r in _RENDERERS if r.claims(request)), PROBLEM_DETAILS)


# limit/offset of a paged list, as OpenAPI parameters (read with query_int).
PAGE_PARAMETERS = (
    {
        "in": "query",
        "name": "limit",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
    },
    {
        "in": "query",
        "name": "offset",
        "required": False,
        "schema": {"type": "integer", "minimum": 0, "maximum": 1000000},
    },
)


def query_int(request, name, default, low, high):
    """An integer query parameter within ``[low, high]`` (400 otherwise)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise InvalidRequest("invalid_request", {"errors": {name: ["out of range"]}})
    return value


@cache
def _instance_of(schema_class):
    return schema_class()


def schema_instance(schema):
    """One instance per schema class for the gateway's life: building a
    marshmallow schema deep-copies its declared fields, which cost a code send
    more than its validation did (py-spy, issue #23). Instances are safe to
    share: load and dump keep no state on them. An instance passes through
    (``many=True`` and the like)."""
    return _instance_of(schema) if isinstance(schema, type) else schema


def load_query(request, schema):
    """The query string validated against ``schema``, as ``load_body`` does
    a body (one value per name; a repeated name is refused)."""
    schema = schema_instance(schema)
    args = request.args
    repeated = [name for name in args if len(args.getlist(name)) > 1]
    if repeated:
        raise InvalidRequest(
            "invalid_request", {"errors": {name: ["repeated"] for name in repeated}}
        )
    try:
        return schema.load(args.to_dict())
    except ValidationError as exc:
        raise InvalidRequest(_code_of(exc.messages), {"errors": exc.messages}) from None


def load_body(request, schema):
    """Parse and validate a JSON body against ``schema`` (a class or an
    instance); InvalidRequest names the bad fields."""
    schema = schema_instance(schema)
    raw = read_body(request)
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidRequest("invalid_json") from None
    nul_at = find_nul(data)
    if nul_at:
        raise InvalidRequest("invalid_request", {"errors": {nul_at: [NUL_MESSAGE]}})
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise InvalidRequest(_code_of(exc.messages), {"errors": exc.messages}) from None


def _leaf_messages(messages):
    if isinstance(messages, dict):
        for value in messages.values():
            yield from _leaf_messages(value)
    elif isinstance(messages, (list, tuple)):
        for value in messages:
            yield from _leaf_messages(value)
    else:
        yield messages


def _code_of(messages):
    """A validator's stable code (``phone_invalid``) when it is the only
    complaint, else the generic ``invalid_request``."""
    leaves = set(_leaf_messages(messages))
    if len(leaves) == 1:
        (only,) = leaves
        if isinstance(only, str) and only in MESSAGES:
            return only
    return "invalid_request"


def forwarded_client(header, trusted_hops):
    """The client address a chain of ``trusted_hops`` proxies vouches for.

    Each proxy *appends* the address it received the request from, so only
    the rightmost ``trusted_hops`` entries were written by our own proxies;
    anything left of them is whatever the client chose to send. With one
    trusted proxy the client is the last entry, with two the one before it.
    ``None`` when the header has fewer entries than that or the entry is
    not an IP address (then the caller falls back to the socket's peer).
    """
    entries = [part.strip() for part in (header or "").split(",")]
    entries = [part for part in entries if part]
    if trusted_hops < 1 or len(entries) < trusted_hops:
        return None
    candidate = entries[-trusted_hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def client_ip(request, config):
    """The caller's address; ``X-Forwarded-For`` only behind trusted proxies
    (``GATEWAY_TRUST_FORWARDED_FOR``), counted ``GATEWAY_TRUSTED_PROXY_HOPS``
    entries from the right."""
    if _truthy(config.get("GATEWAY_TRUST_FORWARDED_FOR")):
        hops = int(config.get("GATEWAY_TRUSTED_PROXY_HOPS") or 1)
        found = forwarded_client(request.headers.get("X-Forwarded-For"), hops)
        if found:
            return found
    return request.remote_addr


def _truthy(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def reshape(schema, answer):
    """An RPC answer checked against the public schema and dumped through it,
    so the client sees exactly the documented fields. ``schema``: a class
    or an instance."""
    schema = schema_instance(schema)
    try:
        return schema.dump(schema.load(answer, unknown=EXCLUDE))
    except ValidationError:
        log.error("a service answered outside the %s contract", type(schema).__name__)
        raise ServiceError("internal_error") from None


class ProblemWsgiApp(WsgiApp):
    """Routing failures (404, 405) answered by the renderer that claims the
    request, with a request id too. Otherwise what Nameko's ``WsgiApp``
    does, on the one match (it would bind and match the URL map again)."""

    def __call__(self, environ, start_response):
        try:
            provider, values = self.url_map.bind_to_environ(environ).match()
        except HTTPException as exc:
            request = Request(environ)
            code = "method_not_allowed" if exc.code == 405 else "not_found"
            request_id = clean_request_id(request.headers.get("X-Request-Id"))
            renderer = renderer_for(request)
            response = renderer.render(
                exc.code, code, request, None, request_id=request_id
            )
            if exc.code == 405 and getattr(exc, "valid_methods", None):
                # RFC 9110 §15.5.6: a 405 lists the methods the resource has.
                methods = renderer.allowed_methods(request, sorted(exc.valid_methods))
                response.headers["Allow"] = ", ".join(methods)
            response.headers["X-Request-Id"] = request_id
            return response(environ, start_response)
        # Shallow, as Nameko's: nothing reads the body before the handler.
        request = Request(environ, shallow=True)
        request.path_values = values
        try:
            answer = provider.handle_request(request)
        except HTTPException as exc:
            answer = exc
        return answer(environ, start_response)


class ProblemWebServer(WebServer):
    def get_wsgi_app(self):
        return ProblemWsgiApp(self)


class ApiHandler(HttpRequestHandler):
    """Nameko's ``@http`` with request ids and problem details."""

    server = ProblemWebServer()

    def __init__(
        self,
        method,
        url,
        body_limit=BODY_LIMITS["json"],
        renderer=PROBLEM_DETAILS,
        **kwargs,
    ):
        kwargs.setdefault("expected_exceptions", (ServiceError,))
        self.body_limit = body_limit
        self.renderer = renderer
        super().__init__(method, url, **kwargs)

    def check_signature(self, args, kwargs):
        check_call_signature(self, args, kwargs)

    def handle_request(self, request):
        request.shallow = False
        request_id = clean_request_id(request.headers.get("X-Request-Id"))
        # werkzeug enforces this on every read of the stream too (a chunked
        # body has no Content-Length to check up front).
        request.max_content_length = self.body_limit
        try:
            if (request.content_length or 0) > self.body_limit:
                raise PayloadTooLarge("payload_too_large", {"limit": self.body_limit})
            args, kwargs = self.get_entrypoint_parameters(request)
            self.check_signature(args, kwargs)
            event = Event()
            self.container.spawn_worker(
                self,
                args,
                kwargs,
                context_data={REQUEST_ID_KEY: request_id},
                handle_result=partial(self.handle_result, event),
            )
            result = event.wait()
            response = self.response_from_result(result)
        except Exception as exc:  # every failure becomes a problem document
            response = self.problem_from_exception(exc, request)
        response.headers["X-Request-Id"] = request_id
        return response

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        headers = None
        if isinstance(result, tuple) and len(result) == 3:
            status, headers, body = result
        elif isinstance(result, tuple):
            status, body = result
        else:
            status, body = 200, result
        if status == 204:
            return Response(status=204, headers=headers)
        return json_response(status, body, headers)

    def problem_from_exception(self, exc, request):
        config = self.container.config if self.container is not None else None
        if isinstance(exc, ServiceError):
            return self.renderer.render(
                status_of(exc), exc.code, request, exc.extra, config=config
            )
        # Anything else is a bug: the log has the trace, the client a code.
        log.error(
            "unexpected %s answering %s %s",
            type(exc).__name__,
            request.method,
            request.path,
        )
        return self.renderer.render(500, "internal_error", request, config=config)


def _werkzeug_path(path):
    return re.sub(r"\{(\w+)\}", r"<\1>", path)


def endpoint(
    method,
    path,
    *,
    summary,
    tags=("platform",),
    request_schema=None,
    response_schema=None,
    status=200,
    errors=(),
    auth=None,
    device_header=None,
    path_schemas=None,
    media_type="application/json",
    renderer=PROBLEM_DETAILS,
    parameters=(),
    request_body=None,
    links=None,
    body="json",
):
    """Declare a gateway route and its OpenAPI description. ``device_header``:
    ``"required"`` or ``"optional"`` when the route reads ``X-Device-Id``
    (session routes always read it). ``media_type``: what the route speaks;
    ``renderer``: how it answers refusals (an ``ErrorRenderer``);
    ``parameters`` adds OpenAPI parameters (query strings, headers);
    ``links`` names the operations a client goes on to with this answer:
    ``{"LogIn": {"target": ("POST", "/api/v1/sessions"), "parameters": {...},
    "requestBody": {...}}}`` in OpenAPI runtime expressions (§4.7.20.4).
    ``body``: which of ``BODY_LIMITS`` the request body is held to."""

    def decorator(fn):
        fn.openapi = {
            "method": method.lower(),
            "path": path,
            "summary": summary,
            "tags": list(tags),
            "request_schema": request_schema,
            "response_schema": response_schema,
            "status": status,
            "errors": list(errors),
            "auth": auth,
            "path_schemas": dict(path_schemas or {}),
            "device_header": device_header
            or ("optional" if auth == "session" else None),
            "description": (fn.__doc__ or "").strip(),
            "media_type": media_type,
            "error_media_type": renderer.media_type,
            "error_schema": renderer.schema,
            "parameters": list(parameters),
            "request_body": request_body,
            "links": dict(links or {}),
            "body_limit": BODY_LIMITS[body],
        }
        return ApiHandler.decorator(
            method,
            _werkzeug_path(path),
            body_limit=BODY_LIMITS[body],
            renderer=renderer,
        )(fn)

    return decorator
