"""What the OpenAPI document declares beyond the routes: the bearer scheme the ``/v1`` routes
need, the error answers every route can give, all in the one shape ``errors.problem`` writes,
and the rules the request types cannot state (``documented``, ``declare_rules``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIFormat,
    OpenAPIType,
    Parameter,
    Reference,
    Schema,
    SecurityScheme,
)

BEARER = "bearer"
SECURITY: list[dict[str, list[str]]] = [{BEARER: []}]


class FieldProblem(msgspec.Struct):
    field: str | None
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    """Every error answer: the status, what to fix, and per-field details when there are."""

    status: int
    detail: str
    errors: list[FieldProblem] | msgspec.UnsetType = msgspec.UNSET
    known_agents: list[str] | msgspec.UnsetType = msgspec.UNSET
    """422 for an unknown agent: the agents there are."""
    task_id: str | msgspec.UnsetType = msgspec.UNSET
    """409 for a reused idempotency key: the task it names (the caller's own)."""


_MEANING = {
    400: "The request is malformed: bad JSON, nesting too deep, a bad parameter or cursor",
    401: "No API key, a malformed Authorization header, or an invalid, revoked or expired key",
    403: "The key lacks the scope the route (or the priority) needs",
    404: "No such task for the key's tenant (another tenant's task is not found either), or no"
         " live key of that name",
    409: "The task's status does not allow the action, the idempotency key was used for"
         " another body, or a live key has that name",
    413: "The body (or its stored form) is above the size limit",
    415: "The body is not application/json",
    422: "The body is valid JSON but not a valid request (unknown agent, unknown scope, ...)",
    429: "A limit is reached: see Retry-After and the RateLimit-* headers",
    503: "A dependency (PostgreSQL, RabbitMQ) is unavailable; retry after Retry-After",
}
V1 = (400, 401, 403, 429, 503)
"""What every ``/v1`` route can answer besides its own."""


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """The error answers ``statuses`` (plus the ``V1`` ones) for a route's ``responses``."""
    return {status: ResponseSpec(Problem, description=_MEANING[status], generate_examples=False)
            for status in sorted({*V1, *statuses})}


def documented(**schema: Any) -> msgspec.Meta:
    """A field's ``Meta`` that adds ``schema`` (``Schema`` attribute names, values as JSON:
    msgspec makes objects plain) to the field in the document only: the decoder does not check
    it (the handler or the store does)."""
    return msgspec.Meta(extra_json_schema={"extra": schema})  # what Litestar reads


_NO_NUL = r"^[^\x00]*$"
_STORABLE_JSON = "StorableJson"
STORABLE_JSON = {"$ref": f"#/components/schemas/{_STORABLE_JSON}"}
"""Any JSON value PostgreSQL can store: text (object keys too) without the NUL character."""


def _storable_json() -> Schema:
    ref = Reference(STORABLE_JSON["$ref"])
    return Schema(
        description="Any JSON value whose text, object keys too, has no NUL character"
                    " (\\u0000): PostgreSQL cannot store it (422)",
        any_of=[Schema(type=[OpenAPIType.NULL, OpenAPIType.BOOLEAN, OpenAPIType.NUMBER]),
                Schema(type=OpenAPIType.STRING, pattern=_NO_NUL),
                Schema(type=OpenAPIType.ARRAY, items=ref),
                Schema(type=OpenAPIType.OBJECT, additional_properties=ref,
                       property_names=Schema(type=OpenAPIType.STRING, pattern=_NO_NUL))])


def openapi_config(**kwargs: Any) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Agent orchestrator", version="0.1.0", path="/schema",
        components=Components(security_schemes={BEARER: SecurityScheme(
            type="http", scheme="bearer", description="an API key: orchestrator keys create")}),
        **kwargs)


STRING_FORMATS: dict[str, Any] = {
    "run_at": OpenAPIFormat.DATE_TIME,  # a str the handler parses (msgspec's lax mode would
    "cron": "cron",                     # take a number for a time)
    "timezone": "time-zone",
}
"""String fields whose handlers check what the types cannot: the format says so (``cron``: five
crontab fields; ``time-zone``: an IANA name)."""


def declare_rules(openapi: OpenAPI, agents: Sequence[str], max_timeout_s: float,
                  bodies: Iterable[type[msgspec.Struct]]) -> None:
    """Say in ``openapi`` (as Litestar built it) what the API enforces but the types cannot:
    the agents this deployment runs (every field or parameter named ``agent``), its ceiling of
    ``timeout_s``, what JSON can be stored, and of the request ``bodies`` the unknown fields
    they refuse and their zero bounds (Litestar leaves out a bound of 0, such as ``gt=0``)."""
    schemas = openapi.components.schemas
    schemas[_STORABLE_JSON] = _storable_json()
    for path in (openapi.paths or {}).values():
        for operation in (path.get, path.put, path.post, path.patch, path.delete):
            for parameter in (operation.parameters or []) if operation else []:
                if (isinstance(parameter, Parameter) and parameter.name == "agent"
                        and isinstance(parameter.schema, Schema)):
                    parameter.schema.enum = list(agents)
    for body in bodies:
        schema = schemas[body.__name__]
        if body.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        info = msgspec.inspect.type_info(body)
        assert isinstance(info, msgspec.inspect.StructType)
        kinds = {field.encode_name: field.type for field in info.fields}
        for name, field in (schema.properties or {}).items():
            if isinstance(field, Schema):
                _zero_bounds(kinds[name], field)
                if name == "agent":
                    field.enum = list(agents)
                if name == "timeout_s":
                    field.maximum = max_timeout_s
                if name in STRING_FORMATS:
                    for member in field.one_of or [field]:
                        if isinstance(member, Schema) and member.type == OpenAPIType.STRING:
                            member.format = STRING_FORMATS[name]


def _zero_bounds(kind: msgspec.inspect.Type | None, schema: Schema) -> None:
    while isinstance(kind, msgspec.inspect.Metadata | msgspec.inspect.UnionType):
        if isinstance(kind, msgspec.inspect.Metadata):
            kind = kind.type
        else:
            kind = next((t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)),
                        None)
    if isinstance(kind, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        for bound, name in (("gt", "exclusive_minimum"), ("ge", "minimum"),
                            ("lt", "exclusive_maximum"), ("le", "maximum")):
            if getattr(kind, bound) == 0:
                setattr(schema, name, 0)
