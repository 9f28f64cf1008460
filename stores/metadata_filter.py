"""Metadata filters shared by every store: one small language, checked the same way everywhere."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# {"source": "a.pdf"} means equality; {"page": {"$gte": 3}} uses an operator.
OPERATORS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"}
Scalar = str | int | float | bool
MetadataFilter = Mapping[str, Any]


def validate_filter(where: MetadataFilter | None) -> None:
    """Raise ``ValueError`` with the offending key when a filter is malformed."""
    for key, condition in (where or {}).items():
        if not isinstance(key, str) or not key or key.startswith("$"):
            raise ValueError(f"filter keys must be metadata field names, got {key!r}")
        if isinstance(condition, Mapping):
            for op, value in condition.items():
                if op not in OPERATORS:
                    raise ValueError(f"unknown filter operator {op!r} for {key!r}; use one of {sorted(OPERATORS)}")
                if op in {"$in", "$nin"} and not isinstance(value, list | tuple):
                    raise ValueError(f"{key!r}: {op} needs a list")
        elif not isinstance(condition, Scalar):
            raise ValueError(f"{key!r}: filter value must be a string, number or boolean")


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
