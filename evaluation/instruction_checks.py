"""Verifiable instruction checks for the suite's instruction-following task.

A record's `check` is a dict with a `type` and, for most types, a `value`:
  {"type": "uppercase"}                      every cased letter is upper case (and there is one)
  {"type": "lowercase"}                      every cased letter is lower case (and there is one)
  {"type": "exact", "value": "Paris"}        response, stripped, equals value
  {"type": "contains", "value": "blue"}      value occurs in the response (case-insensitive)
  {"type": "not_contains", "value": "red"}   value does not occur (case-insensitive)
  {"type": "starts_with", "value": "Yes"}    stripped response starts with value
  {"type": "ends_with", "value": "."}        stripped response ends with value
  {"type": "num_items", "value": 3}          exactly that many list items ("- ", "* ", "1. ", "2) ")
  {"type": "max_words", "value": 20}         at most that many whitespace-separated words
  {"type": "min_words", "value": 5}          at least that many words
"""

from __future__ import annotations

import re
from collections.abc import Callable

_LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+\S", re.MULTILINE)


def _has_case(text: str) -> bool:
    return any(ch.isalpha() and ch.lower() != ch.upper() for ch in text)


CHECKS: dict[str, Callable[[str, object], bool]] = {
    "uppercase": lambda r, _: _has_case(r) and r == r.upper(),
    "lowercase": lambda r, _: _has_case(r) and r == r.lower(),
    "exact": lambda r, v: r.strip() == str(v).strip(),
    "contains": lambda r, v: str(v).lower() in r.lower(),
    "not_contains": lambda r, v: str(v).lower() not in r.lower(),
    "starts_with": lambda r, v: r.strip().startswith(str(v)),
    "ends_with": lambda r, v: r.strip().endswith(str(v)),
    "num_items": lambda r, v: len(_LIST_ITEM.findall(r)) == int(v),
    "max_words": lambda r, v: len(r.split()) <= int(v),
    "min_words": lambda r, v: len(r.split()) >= int(v),
}
NEEDS_VALUE = set(CHECKS) - {"uppercase", "lowercase"}


def validate_check(check: object) -> None:
    """Raise ValueError for a check this module cannot run."""
    if not isinstance(check, dict) or "type" not in check:
        raise ValueError(f"check must be a dict with a 'type', got {check!r}")
    if check["type"] not in CHECKS:
        raise ValueError(f"unknown check type {check['type']!r}; supported: {sorted(CHECKS)}")
    if check["type"] in NEEDS_VALUE and check.get("value") is None:
        raise ValueError(f"check type {check['type']!r} needs a 'value'")


def check_passes(response: str, check: dict) -> bool:
    validate_check(check)
    return bool(CHECKS[check["type"]](response, check.get("value")))
