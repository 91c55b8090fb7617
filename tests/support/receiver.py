"""A real HTTP server on loopback that records every request and answers 200 with a small JSON body: the receiver
of notifications (webhooks, Slack, pings, apprise's json://) and a stand-in service for HTTP health checks."""
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Receiver:
    """``requests`` holds (method, path, raw body) in arrival order; ``take()`` returns and forgets them."""

    def __init__(self, port):
        self.requests = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                received.append((self.command, self.path, self.rfile.read(length) if length else b""))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status": "ok"}')

            do_POST = do_GET = do_HEAD = do_PUT = _record

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self):
        taken = list(self.requests)
        del self.requests[:]
        return taken

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def assert_closed(port, why):
    """Fail unless nothing listens on ``port`` (a test needs it refused, or starts its own server there)."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            pytest.fail("port %d must be closed: %s" % (port, why))
