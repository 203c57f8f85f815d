"""Minimal HTTP/1.1 framing shared by the test client and the upstream (chunked + trailers)."""

import socket


class ProtocolError(Exception):
    """The peer sent something that is not HTTP/1.1 as this harness understands it."""


class Reader:
    """Buffered reads from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self):
        try:
            while True:
                self._fill()
        except (EOFError, OSError):
            pass
        out, self.buf = self.buf, b""
        return out


def show(body):
    """Bodies are recorded as text when they are UTF-8, else as hex."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return "hex:" + body.hex()


def _headers(reader):
    headers = []
    while True:
        line = reader.line()
        if not line:
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers.append([name.strip().lower(), value.strip()])


def _body(reader, headers, until_close=False):
    names = {k: v for k, v in headers}
    if names.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(reader.line().split(b";")[0], 16)
            if size == 0:
                return body, _headers(reader)
            body += reader.exact(size)
            reader.line()
    if "content-length" in names:
        return reader.exact(int(names["content-length"])), []
    if until_close:
        return reader.rest(), []
    return b"", []


def read_request(reader):
    """Reads one request; None on a cleanly closed connection."""
    try:
        line = reader.line()
    except EOFError:
        return None
    parts = line.decode("latin-1").split(" ")
    if len(parts) != 3:
        raise ProtocolError(line)
    headers = _headers(reader)
    body, trailers = _body(reader, headers)
    return {"method": parts[0], "path": parts[1], "headers": headers, "body": body,
            "trailers": trailers}


def read_response(reader, head_only=False):
    """Reads one response (status, headers, body, trailers)."""
    line = reader.line()
    parts = line.decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ProtocolError(line)
    status = int(parts[1])
    headers = _headers(reader)
    if head_only or status in (204, 304) or 100 <= status < 200:
        return status, headers, b"", []
    body, trailers = _body(reader, headers, until_close=True)
    return status, headers, body, trailers


def connect(port, timeout):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s
