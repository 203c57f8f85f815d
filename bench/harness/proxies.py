"""The processes under test: the upstream, Envoy and pwx, each started pinned to given cores,
probed until the first 200 comes through (cold start), and stopped by PID."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

UPSTREAM_BODY_PREFIX = b"bench-upstream"


class ProxyError(Exception):
    """A process under test exited, never served, or answered wrongly."""


@dataclass(frozen=True)
class Filter:
    """One wasm filter in a chain: the same module file and configuration for both proxies."""

    name: str            # plugin name (Envoy) and file stem (pwx)
    vm_id: str           # Envoy vm_id; pwx derives its own from the file stem
    module: str          # path of the .wasm
    config: str          # plugin configuration ("" = none)
    response_header: str | None  # a header the filter adds to responses, checked by the probe


def free_port():
    """A port that was free a moment ago (both proxies need the port before they start, so
    that the cold-start probe can knock from the first millisecond)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd, cpus):
    return ["taskset", "-c", cpus] + cmd if cpus is not None else cmd


def log_tail(path, lines=15):
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


def get_once(port, timeout=1.0):
    """One `GET /` with Connection: close; returns (status, headers lower-cased, body) or None
    when nothing listens yet."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except (ConnectionRefusedError, socket.timeout):
        return None
    with s:
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(parts[1]), headers, body


class Process:
    """A started process with its log file; stop() sends SIGTERM, then SIGKILL, by PID."""

    def __init__(self, name, cmd, workdir, env=None):
        self.name = name
        self.workdir = Path(workdir)
        self.log_path = self.workdir / f"{name}.log"
        self.log = open(self.log_path, "wb")
        self.spawned_at = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.workdir, env=env)
        self.pid = self.proc.pid
        self.command = cmd

    def alive(self):
        return self.proc.poll() is None

    def died(self):
        tail = log_tail(self.log_path)
        lines = [line for line in tail.splitlines() if line.strip()]
        cause = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "no output")
        return ProxyError(f"{self.name} exited with {self.proc.returncode}: {cause.strip()}\n"
                          f"command: {' '.join(self.command)}\nlast log lines:\n{tail}")

    def wait_first_ok(self, port, response_header, timeout_s=60.0):
        """Polls `GET /` every millisecond until a 200 with the upstream's body (and the
        filter's response header, when given) comes back; returns ms since spawn."""
        deadline = self.spawned_at + timeout_s
        last = "nothing listening"
        while time.monotonic() < deadline:
            if not self.alive():
                raise self.died()
            got = get_once(port)
            if got is not None:
                status, headers, body = got
                if status == 200 and body.startswith(UPSTREAM_BODY_PREFIX) and (
                        response_header is None or response_header in headers):
                    return (time.monotonic() - self.spawned_at) * 1e3
                last = f"status {status}, headers {sorted(headers)}"
            time.sleep(0.001)
        raise ProxyError(f"{self.name}: no good response on port {port} within {timeout_s:.0f}s "
                         f"(last: {last})\nlast log lines:\n{log_tail(self.log_path)}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


class Upstream:
    """bench-upstream on a free port, pinned to `cpus`; `port` is the port it bound."""

    def __init__(self, binary, cpus, threads=1):
        cmd = pinned([binary, "--listen", "127.0.0.1:0", "--threads", str(threads)], cpus)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True)
        self.pid = self.proc.pid
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.stop()
            raise ProxyError(f"bench-upstream did not start: {line or 'no output'}")
        self.port = int(line.rsplit(":", 1)[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


# --- Envoy -------------------------------------------------------------------------------------

STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"


def envoy_bootstrap(filters, listen_port, upstream_port):
    """The bootstrap for one scenario: one listener, HCM, the wasm filters (V8, local file),
    the router, one STATIC cluster. JSON is valid YAML, so it is written as envoy.yaml."""
    http_filters = []
    for f in filters:
        plugin = {
            "name": f.name,
            "root_id": "",
            "vm_config": {
                "vm_id": f.vm_id,
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": f.module}},
            },
        }
        if f.config:
            plugin["configuration"] = {"@type": STRING_VALUE, "value": f.config}
        http_filters.append({
            "name": "envoy.filters.http.wasm",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                             "config": plugin},
        })
    http_filters.append({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    })
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                 "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "bench",
        "codec_type": "HTTP1",
        "route_config": {"name": "local", "virtual_hosts": [{
            "name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}]},
        "http_filters": http_filters,
    }
    return {
        "static_resources": {
            "listeners": [{
                "name": "bench",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
            }],
            "clusters": [{
                "name": "upstream",
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [{
                    "endpoint": {"address": {"socket_address": {
                        "address": "127.0.0.1", "port_value": upstream_port}}}}]}]},
            }],
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
    }


def start_envoy(binary, filters, workers, cpus, upstream_port, workdir):
    """Envoy with `--concurrency workers`; returns (process, listen port)."""
    port = free_port()
    config = Path(workdir) / "envoy.yaml"
    config.write_text(json.dumps(envoy_bootstrap(filters, port, upstream_port), indent=1))
    cmd = pinned([binary, "-c", str(config), "--concurrency", str(workers),
                  "--disable-hot-restart", "--use-dynamic-base-id",
                  "--admin-address-path", str(Path(workdir) / "admin-address"),
                  "-l", "warning", "--drain-time-s", "0"], cpus)
    return Process("envoy", cmd, workdir), port


# --- pwx ---------------------------------------------------------------------------------------

def start_pwx(binary, filters, workers, cpus, upstream_port, workdir, cache_dir=None):
    """`pwx run` with the filters in order; each module is linked under its plugin name so that
    pwx names the plugins as Envoy does. `cache_dir` is pwx's compile cache home
    (XDG_CACHE_HOME); None gives a fresh, empty one: a real first start."""
    port = free_port()
    workdir = Path(workdir)
    cmd = [binary, "run"]
    configs = []
    for i, f in enumerate(filters):
        link = workdir / f"{f.name}.wasm"
        if not link.exists():
            os.symlink(f.module, link)
        cmd += [str(link)] if i == 0 else ["--filter", str(link)]
        configs += ["--config", f.config]
    cmd += configs + ["--upstream", f"http://127.0.0.1:{upstream_port}",
                      "--listen", f"127.0.0.1:{port}", "--workers", str(workers)]
    env = dict(os.environ)
    env["PWX_LOG"] = "warn"  # Envoy runs at -l warning
    env["XDG_CACHE_HOME"] = str(cache_dir) if cache_dir else tempfile.mkdtemp(prefix="cache-", dir=workdir)
    return Process("pwx", pinned(cmd, cpus), workdir, env=env), port
