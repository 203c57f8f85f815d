"""Runs wrk and parses its text output (`--latency` block, totals, errors)."""

import re
import subprocess

_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


class WrkError(Exception):
    """wrk failed or printed something this parser does not understand."""


def _to_us(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        raise WrkError(f"unexpected latency value {text!r}")
    return float(m.group(1)) * _UNITS_US[m.group(2)]


def parse(output):
    """The numbers of one wrk run, from its stdout."""
    result = {"non_2xx": 0, "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}}
    m = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    if not m:
        raise WrkError("no 'Requests/sec' line in wrk's output")
    result["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([0-9.]+)(us|ms|s|m)", output)
    if not m:
        raise WrkError("no 'N requests in T' line in wrk's output")
    result["requests"] = int(m.group(1))
    result["seconds"] = _to_us(m.group(2) + m.group(3)) / 1e6
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)\s*$", output, re.MULTILINE)
        if not m:
            raise WrkError(f"no {pct}% latency line (was --latency given?)")
        result[f"p{pct}_us"] = _to_us(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if m:
        result["non_2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if m:
        result["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                           map(int, m.groups())))
    return result


def run(url, connections, seconds, cpus, timeout_s=5):
    """One wrk run (1 thread) pinned to `cpus`; returns the parsed result plus the raw text."""
    # wrk takes whole seconds only ("2.0s" is a usage error).
    whole = max(1, round(seconds))
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{whole}s", f"--timeout={timeout_s}s",
           "--latency", url]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus] + cmd
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=whole + 30)
    except subprocess.TimeoutExpired as e:
        raise WrkError(f"wrk did not finish within {whole + 30}s") from e
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise WrkError(f"wrk exited with {proc.returncode}: {detail[0] if detail else 'no output'}; "
                       f"command: {' '.join(cmd)}")
    result = parse(proc.stdout)
    result["raw"] = proc.stdout
    return result
