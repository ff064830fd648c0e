"""JSON kinds held to the document: Litestar converts a handler's typed ``data`` in msgspec's lax
mode, which takes ``0`` for ``false``, a number for a time and ``"5"`` for ``5``. A handler whose
body has such fields calls ``require_json_kinds`` first: each field present must already be of
its JSON kind (an integer may be written ``5.0``, as JSON Schema allows), else 400 naming it."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

_KINDS: dict[type[msgspec.inspect.Type], tuple[str, tuple[type, ...]]] = {
    msgspec.inspect.BoolType: ("a boolean", (bool,)),
    msgspec.inspect.IntType: ("an integer", (int, float)),
    msgspec.inspect.FloatType: ("a number", (int, float)),
    msgspec.inspect.StrType: ("a string", (str,)),
    msgspec.inspect.DateTimeType: ("a date-time string", (str,)),
    msgspec.inspect.ListType: ("an array", (list,)),
}


def _accepts(kind: msgspec.inspect.Type, value: Any) -> str | None:
    """``None`` when ``value`` is of ``kind``'s JSON kind, else what was expected."""
    if isinstance(kind, msgspec.inspect.Metadata):
        return _accepts(kind.type, value)
    if isinstance(kind, msgspec.inspect.UnionType):
        if value is None and any(isinstance(t, msgspec.inspect.NoneType) for t in kind.types):
            return None
        others = [t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)]
        return _accepts(others[0], value) if len(others) == 1 else None
    name, types = _KINDS.get(type(kind), (None, ()))
    if name is None:
        return None  # a kind Litestar converts strictly enough (enums, structs, ...)
    ok = isinstance(value, types) and not (bool not in types and isinstance(value, bool))
    if ok and isinstance(kind, msgspec.inspect.IntType) and isinstance(value, float):
        ok = value.is_integer()
    return None if ok else name


async def require_json_kinds(request: Request[Any, Any, Any],
                             body: type[msgspec.Struct]) -> None:
    try:
        raw = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        return  # Litestar has answered 400 for that already
    if not isinstance(raw, dict):
        return
    info = msgspec.inspect.type_info(body)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        if field.encode_name in raw:
            expected = _accepts(field.type, raw[field.encode_name])
            if expected is not None:
                message = f"must be {expected}, not {raw[field.encode_name]!r}"
                raise ValidationException(message, extra=[{
                    "source": "body", "key": field.encode_name, "message": message}])
