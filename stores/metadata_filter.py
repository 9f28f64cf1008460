"""Metadata filters shared by every store: one small language, checked the same way everywhere."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# {"source": "a.pdf"} means equality; {"page": {"$gte": 3}} uses an operator.
OPERATORS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"}
Scalar = str | int | float | bool
MetadataFilter = Mapping[str, Any]


RANGE_OPERATORS = {"$gt", "$gte", "$lt", "$lte"}
MAX_FILTER_FIELDS = 32
MAX_IN_VALUES = 1_000
MAX_FILTER_STRING = 1_000


def validate_filter(where: MetadataFilter | None) -> None:
    """Raise ``ValueError`` with the offending key when a filter is malformed or is one a store would
    reject: every value a finite string, number or boolean (no ``NaN``, ``Infinity``, ``null`` or
    nested list), ranges on numbers, ``$in`` lists of one type, and sizes bounded
    (:data:`MAX_FILTER_FIELDS` fields, :data:`MAX_IN_VALUES` values in a list)."""
    if where is None:
        return
    if not isinstance(where, Mapping):
        raise ValueError("a filter must be an object of field names to conditions")
    if len(where) > MAX_FILTER_FIELDS:
        raise ValueError(f"a filter may name at most {MAX_FILTER_FIELDS} fields, got {len(where)}")
    for key, condition in where.items():
        if not isinstance(key, str) or not key or key.startswith("$") or len(key) > 128:
            raise ValueError(f"filter keys must be metadata field names, got {key!r}")
        if not isinstance(condition, Mapping):
            _check_scalar(key, "$eq", condition)
            continue
        if not condition:
            raise ValueError(f"{key!r}: an empty condition; give an operator such as $eq")
        for op, value in condition.items():
            if op not in OPERATORS:
                raise ValueError(f"unknown filter operator {op!r} for {key!r}; use one of {sorted(OPERATORS)}")
            if op in {"$in", "$nin"}:
                _check_list(key, op, value)
            elif op in RANGE_OPERATORS and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ValueError(f"{key!r}: {op} compares numbers, got {value!r}")
            else:
                _check_scalar(key, op, value)


def _check_scalar(key: str, op: str, value: Any) -> None:
    if not isinstance(value, Scalar):
        raise ValueError(f"{key!r}: {op} needs a string, number or boolean, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{key!r}: {op} needs a finite number, got {value}")
    if isinstance(value, str) and len(value) > MAX_FILTER_STRING:
        raise ValueError(f"{key!r}: {op} value is over {MAX_FILTER_STRING} characters")


def _check_list(key: str, op: str, values: Any) -> None:
    if not isinstance(values, list | tuple) or not values:
        raise ValueError(f"{key!r}: {op} needs a non-empty list")
    if len(values) > MAX_IN_VALUES:
        raise ValueError(f"{key!r}: {op} takes at most {MAX_IN_VALUES} values, got {len(values)}")
    for value in values:
        _check_scalar(key, op, value)
    if len({type(v) for v in values}) > 1:
        raise ValueError(f"{key!r}: the values of {op} must all be of one type")


def matches(metadata: Mapping[str, Any], where: MetadataFilter | None) -> bool:
    """Whether a chunk's metadata satisfies the filter (all conditions must hold)."""
    for key, condition in (where or {}).items():
        value = metadata.get(key)
        conditions = condition if isinstance(condition, Mapping) else {"$eq": condition}
        for op, expected in conditions.items():
            if not _holds(op, value, expected):
                return False
    return True


def _holds(op: str, value: Any, expected: Any) -> bool:
    if op == "$eq":
        return value == expected
    if op == "$ne":
        return value != expected
    if op == "$in":
        return value in expected
    if op == "$nin":
        return value not in expected
    if value is None:
        return False
    try:
        return {"$gt": value > expected, "$gte": value >= expected, "$lt": value < expected, "$lte": value <= expected}[
            op
        ]
    except TypeError:
        return False


def to_chroma_where(where: MetadataFilter | None) -> dict[str, Any] | None:
    """The same filter in Chroma's syntax.

    Several conditions need an explicit ``$and``, and Chroma takes one operator per field, so a
    range (``{"cvss": {"$gte": 7, "$lt": 9}}``) becomes one clause per operator.
    """
    if not where:
        return None
    clauses = [
        {key: {op: value}}
        for key, condition in where.items()
        for op, value in (condition.items() if isinstance(condition, Mapping) else [("$eq", condition)])
    ]
    if len(clauses) < 2:
        return clauses[0] if clauses else None
    return {"$and": clauses}
