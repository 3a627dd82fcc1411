"""Reading JSON fields of OCI documents with errors that name the field.

The model's parsers (descriptors, manifests, indexes) share these so every
malformed document is reported the same way, as InvalidArgumentError with a
path such as ``manifest.layers[1].digest: must be a string``.
"""

from __future__ import annotations

from typing import Any

from cairn.core.errors import InvalidArgumentError

__all__ = [
    "JSONObject",
    "annotations_of",
    "extra_of",
    "invalid",
    "object_of",
    "str_list_of",
    "str_of",
]

JSONObject = dict[str, Any]


def invalid(where: str, reason: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{where}: {reason}")


def object_of(value: object, where: str) -> JSONObject:
    if not isinstance(value, dict):
        raise invalid(where, "must be a JSON object")
    return value


def str_of(obj: JSONObject, key: str, where: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise invalid(f"{where}.{key}", "is required")
        return None
    if not isinstance(value, str):
        raise invalid(f"{where}.{key}", "must be a string")
    return value


def str_list_of(obj: JSONObject, key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid(f"{where}.{key}", "must be a list of strings")
    return tuple(value)


def annotations_of(obj: JSONObject, key: str, where: str) -> dict[str, str]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise invalid(f"{where}.{key}", "must be an object of string values")
    return dict(value)


def extra_of(obj: JSONObject, known: frozenset[str]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key not in known}
