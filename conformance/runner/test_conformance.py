"""Runs every case on the proxy under test and compares with the golden recorded from Envoy."""

import json
import os
import re

import pytest
import yaml

from conftest import CONFORMANCE, case_id
from harness import execute, golden, proxy

BLESS = os.environ.get("CONFORMANCE_BLESS") == "1"


def known_differences():
    path = CONFORMANCE / "known-differences.yaml"
    doc = yaml.safe_load(path.read_text()) if path.exists() else None
    return {d["case"]: d for d in (doc or [])}


def drop_path(node, parts):
    """Removes `a.*.b` style paths (`*`: every list element) from a record."""
    if not parts or node is None:
        return
    head, rest = parts[0], parts[1:]
    if head == "*" and isinstance(node, list):
        for item in node:
            drop_path(item, rest)
    elif isinstance(node, dict):
        if rest:
            drop_path(node.get(head), rest)
        else:
            node.pop(head, None)


def group_headers(record):
    """Orders each message's headers as an HTTP library map does: the values of one name
    together, at the place of its first value."""
    for key in ("responses", "upstream"):
        for message in record.get(key) or []:
            headers = message.get("headers") if isinstance(message, dict) else None
            if not headers:
                continue
            order, values = [], {}
            for name, value in headers:
                if name not in values:
                    order.append(name)
                    values[name] = []
                values[name].append(value)
            message["headers"] = [[n, v] for n in order for v in values[n]]


def normalize(record, known):
    """Applies a documented difference to one side of the comparison."""
    for field in known.get("fields") or []:
        record.pop(field, None)
    for path in known.get("drop") or []:
        drop_path(record, path.split("."))
    if known.get("group_headers"):
        group_headers(record)
    for pattern, replacement in known.get("logs_sub") or []:
        for key in ("logs", "startup_logs"):
            if isinstance(record.get(key), list):
                record[key] = [re.sub(pattern, replacement, line) for line in record[key]]


def is_partial(known):
    return any(known.get(k) for k in ("fields", "drop", "group_headers", "logs_sub"))


def test_case(case_path, modules, tmp_path):
    cid = case_id(case_path)
    case = yaml.safe_load(case_path.read_text())
    target = proxy.target_from_env()
    if BLESS and target.name != "envoy":
        pytest.fail("goldens are recorded from Envoy only: unset CONFORMANCE_TARGET to bless")
    paths = [modules(f.get("module", "probe")) for f in case["filters"]]
    record = execute.run_case(case, target, paths, tmp_path)
    actual = golden.text(record)
    golden_path = case_path.with_name(case_path.stem + ".golden.json")
    if BLESS:
        golden_path.write_text(actual)
        return
    if not golden_path.exists():
        pytest.fail(f"{cid}: no golden file; record one with CONFORMANCE_BLESS=1")
    expected = golden_path.read_text()
    known = known_differences().get(cid) if target.name != "envoy" else None
    if known and is_partial(known):
        # Documented differences in named parts of the record: compare the rest.
        exp = json.loads(expected)
        normalize(exp, known)
        normalize(record, known)
        expected, actual = golden.text(exp), golden.text(record)
    if expected != actual:
        if known and not is_partial(known):
            pytest.xfail(f"known difference: {known.get('reason', '')}")
        pytest.fail(f"{cid}: result differs from Envoy's\n"
                    + golden.diff(cid, expected, actual, target.name), pytrace=False)
