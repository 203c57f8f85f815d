"""Runs one case on one proxy and returns its normalised record."""

import json
import re
import socket
import time
from pathlib import Path

from . import proxy, render, tcp, wire
from .upstream import Upstream

# Response headers that change from run to run or name the proxy implementation.
VOLATILE_RESPONSE = {"date", "server", "x-envoy-upstream-service-time"}
# Request headers the proxy adds with per-request values.
VOLATILE_UPSTREAM = {"x-request-id", "x-forwarded-proto", "x-envoy-expected-rq-timeout-ms"}

NORMALISE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    # Rust panic locations move whenever the filter's source changes.
    (re.compile(r"panicked at [^\n]*:\d+:\d+:"), "panicked at <location>:"),
    (re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT"), "<http-date>"),
    (re.compile(r'"x-envoy-upstream-service-time","\d+"'),
     '"x-envoy-upstream-service-time","<n>"'),
]


def normalise(text):
    for rx, repl in NORMALISE:
        text = rx.sub(repl, text)
    return text


def _request_bytes(req):
    method = req.get("method") or ("POST" if ("body" in req or "chunks" in req) else "GET")
    path = req.get("path", "/")
    headers = [list(h) for h in req.get("headers", [])]
    names = {h[0].lower() for h in headers}
    if "host" not in names:
        headers.insert(0, ["host", req.get("host", "example.com")])
    parts = []
    body = req.get("body")
    if isinstance(body, dict):
        body = body.get("repeat", "x") * int(body.get("times", 1))
    if "chunks" in req or req.get("trailers"):
        headers.append(["transfer-encoding", "chunked"])
        chunks = req.get("chunks", [body] if body else [])
        for c in chunks:
            if isinstance(c, dict):
                c = c.get("repeat", "x") * int(c.get("times", 1))
            if c:
                data = c.encode()
                parts.append(b"%x\r\n" % len(data) + data + b"\r\n")
        tail = b"0\r\n"
        for k, v in req.get("trailers", []):
            tail += f"{k}: {v}\r\n".encode()
        parts.append(tail + b"\r\n")
    elif body is not None:
        headers.append(["content-length", str(len(body.encode()))])
        parts.append(body.encode())
    head = f"{method} {path} HTTP/1.1\r\n"
    for k, v in headers:
        head += f"{k}: {v}\r\n"
    return (head + "\r\n").encode(), parts


def send(port, req):
    """Sends one request on a fresh connection; returns the recorded response."""
    timeout = req.get("timeout_ms", 4000) / 1000.0
    head, parts = _request_bytes(req)
    gap = req.get("chunk_delay_ms", 40 if len(parts) > 1 else 0) / 1000.0
    try:
        sock = wire.connect(port, timeout)
    except OSError as e:
        return {"error": f"connect: {e.__class__.__name__}"}
    try:
        if gap:
            sock.sendall(head)
            for p in parts:
                time.sleep(gap)
                sock.sendall(p)
        else:
            sock.sendall(head + b"".join(parts))
        reader = wire.Reader(sock)
        try:
            status, headers, body, trailers = wire.read_response(
                reader, head_only=req.get("method") == "HEAD")
        except socket.timeout:
            return {"error": "timeout"}
        except (EOFError, ConnectionResetError):
            return {"error": "closed"}
        except wire.ProtocolError as e:
            return {"error": f"protocol: {e}"}
        rec = {
            "status": status,
            "headers": [h for h in headers if h[0] not in VOLATILE_RESPONSE],
            "body": wire.show(body),
        }
        if trailers:
            rec["trailers"] = trailers
        return rec
    except (socket.timeout, TimeoutError):
        return {"error": "timeout"}
    except (BrokenPipeError, ConnectionResetError):
        return {"error": "closed"}
    finally:
        sock.close()


def parse_log(path):
    """(level, logger, message) for every line of a log written with proxy.LOG_FORMAT."""
    entries = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return entries
    for line in text.split("\n"):
        if line.startswith(proxy.MARK):
            level, _, rest = line[len(proxy.MARK):].partition("|")
            logger, _, msg = rest.partition("|")
            entries.append([level, logger, msg])
        elif entries and line:
            entries[-1][2] += "\n" + line
    return entries


WASM_LOG = re.compile(r"^wasm log(?P<prefix>[^:]*): (?P<msg>.*)$", re.S)


def filter_logs(entries):
    """The lines a filter wrote with proxy_log: `<level> <message>` (prefix stripped)."""
    out = []
    for level, logger, msg in entries:
        if logger != "wasm":
            continue
        m = WASM_LOG.match(msg)
        if m:
            out.append(f"{level} {normalise(m.group('msg'))}")
    return out


def wait_quiet(path, settle=0.15, limit=2.0):
    """Waits until the log file stops growing for `settle` seconds."""
    deadline = time.monotonic() + limit
    last = -1
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        try:
            size = Path(path).stat().st_size
        except FileNotFoundError:
            size = 0
        if size != last:
            last = size
            stable_since = time.monotonic()
        elif time.monotonic() - stable_since >= settle:
            return
        time.sleep(0.03)


def metric_names(case):
    """Metrics to record: the probe's define_metric names, plus the case's `metrics:` list
    (for filters other than the probe, whose metric names the runner cannot see)."""
    names = list(case.get("metrics") or [])

    def walk(v):
        if isinstance(v, dict):
            if v.get("op") == "define_metric" and isinstance(v.get("name"), str):
                names.append(v["name"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    for f in case.get("filters", []):
        walk(f.get("config"))
        walk(f.get("vm_config"))
    return names


def read_metrics(started, names):
    if not names:
        return {}
    out = {}
    text = started.admin("/stats")
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        for n in names:
            if name == n or name.endswith("." + n):
                value = value.strip()
                out[name] = int(value) if value.lstrip("-").isdigit() else "histogram"
    return dict(sorted(out.items()))


def run_tcp_case(case, target, module_paths, workdir):
    """A `listener: tcp` case: TCP upstreams, the connections' steps, one after another."""
    upstreams = {"upstream": tcp.TcpUpstream(case.get("upstream") or {})}
    for name, spec in (case.get("upstreams") or {}).items():
        upstreams[name] = tcp.TcpUpstream(spec or {})
    started = None
    record = {}
    try:
        cfg = render.tcp_bootstrap(case, module_paths, {n: u.port for n, u in upstreams.items()})
        cfg_path = workdir / "envoy.yaml"
        cfg_path.write_text(render.dump(cfg))
        started = target.start(cfg_path, workdir)
        record["startup"] = "accepted" if started.accepted else "rejected"
        startup_end = None
        if started.accepted:
            wait_quiet(started.log_path)
            startup_end = len(parse_log(started.log_path))
            record["connections"] = [tcp.run_connection(started.listen_port, c)
                                     for c in case.get("connections", [])]
            if case.get("settle_ms"):
                time.sleep(case["settle_ms"] / 1000.0)
            wait_quiet(started.log_path)
            record["metrics"] = read_metrics(started, metric_names(case))
            before_stop = len(parse_log(started.log_path))
            started.stop()
        else:
            before_stop = None
        entries = parse_log(started.log_path)
        if before_stop is None:
            before_stop = len(entries)
        for i, (_level, logger, msg) in enumerate(entries):
            if logger == "main" and "caught ENVOY_SIGTERM" in msg:
                before_stop = i
                break
        if startup_end is None:
            startup_end = before_stop
        record["upstream"] = {n: u.received for n, u in upstreams.items()}
        record["startup_logs"] = filter_logs(entries[:startup_end])
        record["logs"] = filter_logs(entries[startup_end:before_stop])
        if case.get("record_shutdown_logs"):
            record["shutdown_logs"] = filter_logs(entries[before_stop:])
        if not record.get("metrics"):
            record.pop("metrics", None)
        return record
    finally:
        if started is not None:
            started.kill()
        for u in upstreams.values():
            u.close()


def run_case(case, target, module_paths, workdir):
    """Starts upstream + proxy, sends the requests, stops everything, returns the record."""
    workdir = Path(workdir)
    if case.get("listener") == "tcp":
        return run_tcp_case(case, target, module_paths, workdir)
    upstream = Upstream(case.get("upstream"))
    started = None
    record = {}
    try:
        cfg = render.bootstrap(case, module_paths, upstream.port)
        cfg_path = workdir / "envoy.yaml"
        cfg_path.write_text(render.dump(cfg))
        started = target.start(cfg_path, workdir)
        record["startup"] = "accepted" if started.accepted else "rejected"
        responses = []
        startup_end = None
        if started.accepted:
            wait_quiet(started.log_path)
            startup_end = len(parse_log(started.log_path))
            for req in case.get("requests", [{}]):
                if req.get("sleep_before_ms"):
                    time.sleep(req["sleep_before_ms"] / 1000.0)
                responses.append(send(started.listen_port, req))
            if case.get("settle_ms"):
                time.sleep(case["settle_ms"] / 1000.0)
            wait_quiet(started.log_path)
            record["metrics"] = read_metrics(started, metric_names(case))
            before_stop = len(parse_log(started.log_path))
            if any(r.get("error") == "timeout" for r in responses):
                # A looping filter holds the worker: SIGTERM would not be served.
                started.kill()
            else:
                started.stop()
        else:
            before_stop = None
        entries = parse_log(started.log_path)
        if before_stop is None:
            before_stop = len(entries)
        # Envoy buffers its log file until exit: split at its own SIGTERM line instead.
        for i, (_level, logger, msg) in enumerate(entries):
            if logger == "main" and "caught ENVOY_SIGTERM" in msg:
                before_stop = i
                break
        record["responses"] = responses
        # Requests on concurrent upstream connections (callouts) have no defined order: sort.
        record["upstream"] = sorted(
            ({**r, "headers": [h for h in r["headers"] if h[0] not in VOLATILE_UPSTREAM]}
             for r in upstream.received),
            key=lambda r: json.dumps(r, sort_keys=True))
        if startup_end is None:
            startup_end = before_stop
        record["startup_logs"] = filter_logs(entries[:startup_end])
        record["logs"] = filter_logs(entries[startup_end:before_stop])
        if case.get("record_shutdown_logs"):
            record["shutdown_logs"] = filter_logs(entries[before_stop:])
        if not record.get("metrics"):
            record.pop("metrics", None)
        return record
    finally:
        if started is not None:
            started.kill()
        upstream.close()
