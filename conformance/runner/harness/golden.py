"""Golden files: stable JSON text, and readable diffs."""

import difflib
import json


def _scalar(v):
    return not isinstance(v, (dict, list))


def dumps(value, indent=0):
    """JSON with one entry per line; short lists of scalars (header pairs) stay on one line."""
    pad = "  " * indent
    inner = "  " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in sorted(value.items())]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        if all(_scalar(v) for v in value) and len(value) <= 4:
            return json.dumps(value, ensure_ascii=False)
        items = [f"{inner}{dumps(v, indent + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, ensure_ascii=False)


def text(record):
    return dumps(record) + "\n"


def diff(case_id, expected, actual, target):
    lines = difflib.unified_diff(
        expected.splitlines(keepends=True), actual.splitlines(keepends=True),
        fromfile=f"{case_id} (golden, recorded from envoy)",
        tofile=f"{case_id} ({target})", n=3)
    return "".join(lines)
