"""A tiny HTTP/1.1 upstream on 127.0.0.1 that records what it receives and answers per the case."""

import socket
import threading
import time

from . import wire


class Upstream:
    """Serves HTTP/1.1 (keep-alive, chunked, trailers) on an ephemeral port in a thread."""

    def __init__(self, spec):
        self.spec = spec or {}
        self.received = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        self._conns = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self):
        self._stop = True
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
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        reader = wire.Reader(conn)
        try:
            while True:
                req = wire.read_request(reader)
                if req is None:
                    return
                rec = {
                    "method": req["method"],
                    "path": req["path"],
                    "headers": req["headers"],
                    "body": wire.show(req["body"]),
                }
                if req["trailers"]:
                    rec["trailers"] = req["trailers"]
                with self._lock:
                    self.received.append(rec)
                self._respond(conn, req)
        except (OSError, EOFError, ValueError, wire.ProtocolError):
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _pick(self, path):
        for prefix, spec in (self.spec.get("by_path") or {}).items():
            if path.startswith(prefix):
                return spec
        return self.spec

    def _respond(self, conn, req):
        spec = self._pick(req["path"])
        delay = spec.get("delay_ms", 0)
        if delay:
            time.sleep(delay / 1000.0)
        mode = spec.get("mode", "echo")
        if mode == "reset":
            conn.shutdown(socket.SHUT_RDWR)
            raise OSError("reset")
        status = spec.get("status", 200)
        headers = [list(h) for h in spec.get("headers", [])]
        if mode == "echo":
            body = req["body"] if req["body"] else f"{req['method']} {req['path']}".encode()
            headers.append(["x-echo-method", req["method"]])
        else:
            body = spec.get("body", "").encode()
        chunks = spec.get("chunks")
        trailers = spec.get("trailers") or []
        reason = "OK" if status == 200 else "Status"
        head = f"HTTP/1.1 {status} {reason}\r\n"
        for k, v in headers:
            head += f"{k}: {v}\r\n"
        if chunks is not None or trailers:
            parts = [c.encode() for c in chunks] if chunks is not None else [body]
            head += "transfer-encoding: chunked\r\n\r\n"
            conn.sendall(head.encode())
            gap = spec.get("chunk_delay_ms", 0)
            for p in parts:
                if not p:
                    continue
                if gap:
                    time.sleep(gap / 1000.0)
                conn.sendall(b"%x\r\n" % len(p) + p + b"\r\n")
            tail = b"0\r\n"
            for k, v in trailers:
                tail += f"{k}: {v}\r\n".encode()
            conn.sendall(tail + b"\r\n")
        else:
            head += f"content-length: {len(body)}\r\n\r\n"
            conn.sendall(head.encode() + body)
