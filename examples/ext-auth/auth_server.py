#!/usr/bin/env python3
"""A small bearer-token auth service for trying the ext-auth example (Python standard library only).

Every request, whatever its method and path, is a check: `Authorization: Bearer <token>` with a
known token gets 200 and `x-user: <user>`; a missing or malformed header gets 401 with
`WWW-Authenticate`; an unknown token gets 403. Each answer carries `x-auth-reason`.

    python3 examples/ext-auth/auth_server.py                      # 127.0.0.1:9001
    python3 examples/ext-auth/auth_server.py --port 9002 --token s3cret=carol
"""

import argparse
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_TOKENS = {"alice-token": "alice", "bob-token": "bob"}


class CheckHandler(BaseHTTPRequestHandler):
    tokens = DEFAULT_TOKENS
    protocol_version = "HTTP/1.1"

    def check(self):
        # A check request may carry a body; read it so the connection can be reused.
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        header = self.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self.answer(401, "missing bearer token", "missing bearer token\n",
                        [("www-authenticate", 'Bearer realm="ext-auth example"')])
        elif token.strip() not in self.tokens:
            self.answer(403, "unknown token", "unknown token\n", [])
        else:
            user = self.tokens[token.strip()]
            self.answer(200, "token ok", "", [("x-user", user)])

    def answer(self, status, reason, body, headers):
        data = body.encode()
        self.send_response(status)
        self.send_header("x-auth-reason", reason)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = check

    def log_message(self, fmt, *args):
        sys.stderr.write("auth_server: %s %s\n" % (self.address_string(), fmt % args))


def parse_tokens(values):
    tokens = {}
    for v in values:
        token, sep, user = v.partition("=")
        if not sep or not token or not user:
            raise SystemExit(f"auth_server: --token {v!r}: expected TOKEN=USER")
        tokens[token] = user
    return tokens


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN=USER",
                        help="accepted token (repeatable; default: alice-token=alice, bob-token=bob)")
    args = parser.parse_args()
    CheckHandler.tokens = parse_tokens(args.token) if args.token else DEFAULT_TOKENS
    server = ThreadingHTTPServer((args.host, args.port), CheckHandler)
    sys.stderr.write(f"auth_server: listening on http://{args.host}:{args.port}, "
                     f"tokens: {', '.join(sorted(CheckHandler.tokens))}\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
