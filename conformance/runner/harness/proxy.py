"""The proxies under test: real Envoy (the reference) and pwx, started the same way."""

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# Every log line starts with this marker; lines without it continue the previous line.
MARK = "@@"
LOG_FORMAT = MARK + "%l|%n|%v"


class Started:
    """A running (or refused) proxy process."""

    def __init__(self, proc, workdir, log_path, admin_port, listen_port, accepted, exit_code):
        self.proc = proc
        self.workdir = workdir
        self.log_path = log_path
        self.admin_port = admin_port
        self.listen_port = listen_port
        self.accepted = accepted
        self.exit_code = exit_code

    def admin(self, path, timeout=2.0):
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode("utf-8", "replace")

    def stop(self, timeout=3.0):
        """Stops the process by PID: SIGTERM, then SIGKILL."""
        if self.proc.poll() is not None:
            return
        try:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


class Target:
    """Base: how to build the command line for one proxy."""

    name = "?"

    def command(self, config_path, admin_path, log_path):
        raise NotImplementedError

    def start(self, config_path, workdir, startup_timeout=20.0):
        admin_path = workdir / "admin-address"
        log_path = workdir / "proxy.log"
        out = open(workdir / "stdout.txt", "wb")
        proc = subprocess.Popen(
            self.command(config_path, admin_path, log_path),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir)
        out.close()
        started = Started(proc, workdir, log_path, None, None, False, None)
        deadline = time.monotonic() + startup_timeout
        try:
            while time.monotonic() < deadline:
                code = proc.poll()
                if code is not None:
                    started.exit_code = code
                    return started
                if admin_path.exists() and admin_path.read_text().strip():
                    addr = admin_path.read_text().strip()
                    started.admin_port = int(addr.rsplit(":", 1)[1])
                    port = self._listener_port(started)
                    if port:
                        started.listen_port = port
                        started.accepted = True
                        return started
                time.sleep(0.02)
            raise TimeoutError(f"{self.name} did not become ready in {startup_timeout}s")
        except BaseException:
            started.kill()
            raise

    @staticmethod
    def _listener_port(started):
        try:
            doc = json.loads(started.admin("/listeners?format=json", timeout=0.5))
        except (OSError, ValueError):
            return None
        for listener in doc.get("listener_statuses", []):
            port = listener.get("local_address", {}).get("socket_address", {}).get("port_value")
            if port:
                return int(port)
        return None


class Envoy(Target):
    name = "envoy"

    def __init__(self):
        venv = REPO / ".venv" / "bin" / "envoy"
        self.binary = os.environ.get("ENVOY_BIN") or (str(venv) if venv.exists() else "envoy")

    def command(self, config_path, admin_path, log_path):
        return [
            self.binary, "-c", str(config_path),
            "--concurrency", "1",
            "--disable-hot-restart",
            "--use-dynamic-base-id",
            "--admin-address-path", str(admin_path),
            "--log-path", str(log_path),
            "--log-format", LOG_FORMAT,
            "-l", "warning",
            "--component-log-level", "wasm:trace",
            "--drain-time-s", "0",
            "--file-flush-interval-msec", "20",
        ]


class Pwx(Target):
    """`pwx run -c <the same envoy.yaml>`; same flags as Envoy for the parts the runner reads.

    Contract (see conformance/README.md): pwx writes the admin address (`host:port`) to the
    file given by --admin-address-path once it serves, serves `/listeners?format=json` and
    `/stats` like Envoy's admin, and writes filter logs to --log-path as
    `@@<level>|wasm|wasm log<prefix>: <message>` lines.
    """

    name = "pwx"

    def __init__(self):
        default = REPO / "target" / "debug" / "pwx"
        self.binary = os.environ.get("PWX_BIN") or str(default)

    def command(self, config_path, admin_path, log_path):
        return [
            self.binary, "run", "-c", str(config_path),
            "--concurrency", "1",
            "--admin-address-path", str(admin_path),
            "--log-path", str(log_path),
            "--log-format", LOG_FORMAT,
            "--component-log-level", "wasm:trace",
        ]


def target_from_env():
    name = os.environ.get("CONFORMANCE_TARGET", "envoy")
    if name == "envoy":
        return Envoy()
    if name == "pwx":
        return Pwx()
    raise ValueError(f"CONFORMANCE_TARGET must be envoy or pwx, not {name!r}")
