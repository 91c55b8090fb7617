"""The shop's backend: orders in PostgreSQL, work for the worker queued in redis.

GET /healthz (database and cache), GET /orders/count, POST /orders {"customer_id", "item", "quantity"}.
"""
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Redis, db_connect  # noqa: E402


class Handler(BaseHTTPRequestHandler):
    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        try:
            if self.path == "/healthz":
                with db_connect() as conn:
                    conn.execute("SELECT 1")
                cache = Redis()
                pong = cache.command("PING")
                cache.close()
                return self._send(200, {"status": "ok", "db": True, "cache": pong == "PONG"})
            if self.path == "/orders/count":
                with db_connect() as conn:
                    count = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
                return self._send(200, {"orders": count})
            return self._send(404, {"error": "not found"})
        except Exception as exc:  # a health endpoint reports, it does not crash
            return self._send(503, {"status": "error", "error": str(exc)})

    def do_POST(self):
        if self.path != "/orders":
            return self._send(404, {"error": "not found"})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            with db_connect() as conn:
                order_id = conn.execute(
                    "INSERT INTO orders (customer_id, item, quantity) VALUES (%s, %s, %s) RETURNING id",
                    (body.get("customer_id", 1), body.get("item", "thing"), body.get("quantity", 1))).fetchone()[0]
            cache = Redis()
            cache.command("RPUSH", "orders:new", order_id)
            cache.close()
            return self._send(201, {"id": order_id})
        except Exception as exc:
            return self._send(500, {"error": str(exc)})

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler)
    # SystemExit out of serve_forever; server.shutdown() from the serving thread itself would deadlock.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("backend listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
