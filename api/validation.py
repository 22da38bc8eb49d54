"""Request input: JSON bodies checked against small JSON Schemas (the same
schemas the OpenAPI document publishes, so the two cannot drift), query
parameters and path ids. Every failure names the field and has a stable code."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any, NoReturn

from aiohttp import web

from api.errors import BadRequest, ClientGone, UnsupportedMediaType, echoed
from common.ids import ID_PATTERN, is_valid_id
from common.text import NAME_PATTERN, normal_name

# The body a handler read and validated (`read_body`), as it applies it.
VALIDATED_BODY = web.RequestKey("validated_body", dict)

Schema = dict[str, Any]

# Text fields refuse NUL (PostgreSQL cannot store it); names are as
# common/text.py says (stored in NFC, see read_body).
TEXT_PATTERN = r"^[^\u0000]*$"
ID_SCHEMA: Schema = {"type": "string", "pattern": ID_PATTERN.pattern}
# Teams named in a body: a notebook's shares, who may use a config.
TEAM_IDS_SCHEMA: Schema = {"type": "array", "items": ID_SCHEMA, "maxItems": 100}
TIMEOUT_SCHEMA: Schema = {
    "type": "integer",
    "anyOf": [{"const": 0}, {"minimum": 300, "maximum": 604800}],
    "description": "0 (never) or 300..604800 seconds",
}
# An organization's cap on a timeout: whole minutes, as the console sets
# and shows it (a cap of 450 s would be a default no minute field can hold).
TIMEOUT_CAP_SCHEMA: Schema = {
    "type": "integer",
    "anyOf": [{"const": 0}, {"minimum": 300, "maximum": 604800, "multipleOf": 60}],
    "description": "0 (no cap) or 300..604800 seconds in whole minutes",
}
# An organization's default for a new notebook's timeout: as a cap's range
# (whole minutes, 0 being never), or null, the platform's.
DEFAULT_TIMEOUT_SCHEMA: Schema = {
    "type": ["integer", "null"],
    "anyOf": [*TIMEOUT_CAP_SCHEMA["anyOf"], {"type": "null"}],
    "description": "null (the platform's), 0 (never) or 300..604800 seconds in whole minutes",
}


def name_schema(max_length: int = 128) -> Schema:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": NAME_PATTERN}


def text_schema(max_length: int) -> Schema:
    return {"type": "string", "maxLength": max_length, "pattern": TEXT_PATTERN}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _type_ok(value: object, type_name: str | list[str]) -> bool:
    if isinstance(type_name, list):  # ["array", "null"]: any of them
        return any(_type_ok(value, one) for one in type_name)
    if type_name == "null":
        return value is None
    if type_name in ("integer", "number") and isinstance(value, bool):
        return False
    if type_name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES[type_name])


def check(value: object, schema: Schema, field: str) -> None:
    """Validate `value` against the supported subset of JSON Schema."""
    if "type" in schema and not _type_ok(value, schema["type"]):
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        raise BadRequest(
            f"{field} must be of type {' or '.join(kinds)}.", code="wrong_type", field=field
        )
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            try:
                check(value, option, field)
                break
            except BadRequest:
                continue
        else:
            raise BadRequest(
                f"{field} is out of range ({schema.get('description', '')}).",
                code="out_of_range",
                field=field,
            )
    if "const" in schema and value != schema["const"]:
        raise BadRequest(f"{field} must be {schema['const']!r}.", code="out_of_range", field=field)
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(map(str, schema["enum"]))
        raise BadRequest(f"{field} must be one of: {allowed}.", code="invalid_value", field=field)
    if isinstance(value, str):
        _check_string(value, schema, field)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise BadRequest(
                f"{field} must be at least {schema['minimum']}.", code="out_of_range", field=field
            )
        if "maximum" in schema and value > schema["maximum"]:
            raise BadRequest(
                f"{field} must be at most {schema['maximum']}.", code="out_of_range", field=field
            )
        if "multipleOf" in schema and value % schema["multipleOf"]:
            raise BadRequest(
                f"{field} must be a multiple of {schema['multipleOf']}.",
                code="out_of_range",
                field=field,
            )
    elif isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise BadRequest(
                f"{field} has more than {schema['maxItems']} items.",
                code="out_of_range",
                field=field,
            )
        for i, item in enumerate(value):
            check(item, schema.get("items", {}), f"{field}[{i}]")
    elif isinstance(value, dict):
        _check_object(value, schema, field)


def _check_string(value: str, schema: Schema, field: str) -> None:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise BadRequest(
            f"{field} is not valid Unicode text.", code="invalid_value", field=field
        ) from None
    if "\x00" in value:  # PostgreSQL stores no NUL in text or jsonb
        raise BadRequest(
            f"{field} must not contain NUL characters.", code="invalid_value", field=field
        )
    if len(value) < schema.get("minLength", 0):
        raise BadRequest(
            f"{field} must not be empty."
            if schema["minLength"] == 1
            else f"{field} is shorter than {schema['minLength']}.",
            code="invalid_length",
            field=field,
        )
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise BadRequest(
            f"{field} is longer than {schema['maxLength']} characters.",
            code="invalid_length",
            field=field,
        )
    # The whole value: `$` alone would also match before a final newline.
    if "pattern" in schema and not _compiled(schema["pattern"]).fullmatch(value):
        if schema["pattern"] == ID_SCHEMA["pattern"]:
            raise BadRequest(f"{field} is not a valid id.", code="invalid_id", field=field)
        raise BadRequest(f"{field} has an invalid format.", code="invalid_value", field=field)


def _check_object(value: dict[str, Any], schema: Schema, field: str) -> None:
    props: dict[str, Schema] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    prefix = f"{field}." if field else ""
    for key, item in value.items():
        if key in props:
            check(item, props[key], prefix + key)
            continue
        path = prefix + echoed(key)  # the client's own key
        if extra is False:
            raise BadRequest(f"Unknown field {path}.", code="unknown_field", field=path)
        if isinstance(extra, dict):
            if "propertyNames" in schema:
                check(key, schema["propertyNames"], path)
            check(item, extra, path)
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        raise BadRequest(
            f"{field} has more than {schema['maxProperties']} entries.",
            code="out_of_range",
            field=field,
        )
    for key in schema.get("required", ()):
        if key not in value:
            raise BadRequest(
                f"{prefix + key} is required.", code="missing_field", field=prefix + key
            )


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


async def receive_body(request: web.Request) -> bytes:
    """The raw body, read whole (aiohttp keeps it for later reads)."""
    try:
        return await request.read()
    except web.RequestPayloadError:  # e.g. Content-Encoding: gzip on a body that is not gzip
        raise BadRequest(
            "The body could not be decoded.", code="malformed_body", field="body"
        ) from None
    except (ConnectionError, TimeoutError):  # the connection lost mid-body (reset, timed out)
        raise ClientGone("The client closed the connection before sending its body.") from None


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_constant(literal: str) -> NoReturn:
    raise ValueError(f"{literal} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, item in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = item
    return found


def parse_json(raw: bytes) -> object:
    """JSON as RFC 8259 has it, not Python's looser reading: no NaN or
    Infinity, and no key twice in an object (which one counts would be up to
    each reader; Python takes the last)."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except _DuplicateKey as dup:
        raise BadRequest(
            f"The body has the key {echoed(dup.key)} twice in one object.",
            code="malformed_json",
            field="body",
        ) from None
    except (ValueError, RecursionError):
        raise BadRequest(
            "The body is not valid JSON.", code="malformed_json", field="body"
        ) from None


async def read_body(request: web.Request, schema: Schema) -> dict[str, Any]:
    """The request's JSON object, validated; an absent body counts as `{}`."""
    raw = await receive_body(request)
    if not raw.strip():
        value: object = {}
    else:
        ctype = request.content_type
        if not (
            ctype == "application/json"
            or (ctype.startswith("application/") and ctype.endswith("+json"))
        ):
            raise UnsupportedMediaType("Send the body as application/json.", field="Content-Type")
        value = parse_json(raw)
    if not isinstance(value, dict):
        raise BadRequest("The body must be a JSON object.", code="wrong_type", field="body")
    # Names are judged in the form they are stored in: NFC can lengthen one
    # (U+0958, a composition exclusion, becomes two code points) past its maxLength.
    props = schema.get("properties", {})
    for key, item in value.items():
        if isinstance(item, str) and props.get(key, {}).get("pattern") == NAME_PATTERN:
            value[key] = normal_name(item)
    check(value, schema, "")
    request[VALIDATED_BODY] = value  # as applied: what an audit entry records
    return value


def path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not is_valid_id(value):
        raise BadRequest(f"{name} is not a valid id.", code="invalid_id", field=name)
    return value


def query_limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return 100
    if not re.fullmatch(r"[0-9]{1,4}", raw) or int(raw) > 100:
        raise BadRequest(
            "limit must be an integer from 0 to 100.", code="out_of_range", field="limit"
        )
    return int(raw)


# `?q=`: a search's text, trimmed; "" is no search. Matched as a plain
# substring, however capitalised (members, notebooks).
SEARCH_MAX = 128


def search_parameter(description: str) -> dict[str, Any]:
    return {
        "required": False,
        "description": description,
        "schema": {"type": "string", "maxLength": SEARCH_MAX},
    }


def query_search(request: web.Request) -> str | None:
    q = request.query.get("q", "").strip()
    if len(q) > SEARCH_MAX or "\x00" in q:
        raise BadRequest(
            f"q must be at most {SEARCH_MAX} characters, without NUL.",
            code="validation_failed",
            field="q",
        )
    return q or None
