"""TCP cases: a raw byte upstream and a scripted client for network-filter listeners."""

import socket
import threading
import time

from . import wire


class TcpUpstream:
    """A TCP upstream on 127.0.0.1 that records what each connection sent and how it ended.

    Modes: `tcp_echo` writes back every byte it reads; `tcp_sink` only reads. Options:
    `greeting` (bytes sent as soon as a connection is accepted), `close_on` (after echoing data
    that contains this text, close the connection — `close_delay_ms` later), `close_after_ms` (close every connection
    this long after it was accepted). When the proxy half-closes, the upstream finishes what it
    echoes and closes too.
    """

    def __init__(self, spec):
        self.spec = spec
        self.connections = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def received(self):
        with self._lock:
            return [dict(c) for c in self.connections]

    def close(self):
        try:
            self._sock.close()
        except OSError:
            pass
        for c in list(self._conns):
            try:
                c.close()
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            rec = {"data": "", "ended_by": None}
            with self._lock:
                self.connections.append(rec)
            threading.Thread(target=self._serve, args=(conn, rec), daemon=True).start()

    def _serve(self, conn, rec):
        spec = self.spec
        echo = spec.get("mode", "tcp_echo") == "tcp_echo"
        received = b""
        try:
            if spec.get("greeting"):
                conn.sendall(spec["greeting"].encode())
            deadline = None
            if spec.get("close_after_ms"):
                deadline = time.monotonic() + spec["close_after_ms"] / 1000.0
            while True:
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        rec["ended_by"] = "upstream"
                        return
                    conn.settimeout(left)
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    rec["ended_by"] = "proxy"
                    return
                received += data
                rec["data"] = wire.show(received)
                if echo:
                    conn.sendall(data)
                if spec.get("close_on") and spec["close_on"].encode() in received:
                    # A pause between the echo and the close keeps them in separate reads on
                    # the proxy's side (data, then end of stream), whatever the kernel's timing.
                    time.sleep(spec.get("close_delay_ms", 0) / 1000)
                    rec["ended_by"] = "upstream"
                    return
        except OSError as e:
            rec["ended_by"] = f"error: {e.__class__.__name__}"
        finally:
            try:
                conn.close()
            except OSError:
                pass


def run_connection(port, conn_spec):
    """Plays one connection's steps; returns what the client received and how it ended.

    Steps: `{send: text}`, `{sleep_ms: n}`, `{read_ms: n}` (collect what arrives for n ms),
    `{shutdown: write}` (half-close), `{close: true}` (close, then stop). After the steps the
    client reads until the proxy closes or `final_read_ms` (default 600) passes.
    """
    timeout = conn_spec.get("final_read_ms", 600) / 1000.0
    out = {"received": "", "closed_by_proxy": False}
    try:
        sock = wire.connect(port, 2.0)
    except OSError as e:
        return {"error": f"connect: {e.__class__.__name__}"}
    received = b""
    closed = False

    def read_for(seconds):
        nonlocal received, closed
        end = time.monotonic() + seconds
        while not closed:
            left = end - time.monotonic()
            if left <= 0:
                return
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                return
            except ConnectionResetError:
                closed = True
                out["reset"] = True
                return
            if not data:
                closed = True
                return
            received += data

    try:
        for step in conn_spec.get("steps", []):
            if "send" in step:
                if closed:
                    out.setdefault("send_after_close", True)
                    continue
                try:
                    sock.sendall(step["send"].encode())
                except (BrokenPipeError, ConnectionResetError):
                    out["send_failed"] = True
            elif "sleep_ms" in step:
                time.sleep(step["sleep_ms"] / 1000.0)
            elif "read_ms" in step:
                read_for(step["read_ms"] / 1000.0)
            elif step.get("shutdown") == "write":
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            elif step.get("close"):
                out["received"] = wire.show(received)
                out["closed_by_proxy"] = closed
                return out
        read_for(timeout)
        out["received"] = wire.show(received)
        out["closed_by_proxy"] = closed
        return out
    finally:
        sock.close()
