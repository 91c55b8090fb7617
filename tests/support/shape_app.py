"""The writer service of the shape stacks (support/shapes.py): a small HTTP app that really uses its database.

GET /healthz answers 200 once `SELECT count(*) FROM app.items` works (the app needs its schema, search_path
included: it names no schema, so a restore that loses the database's settings makes it unhealthy).
POST /items adds a row. It runs from the shop's app image, which has python3-psycopg.
"""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg


def password():
    path = os.environ.get("DB_PASSWORD_FILE")
    if path:
        with open(path) as handle:
            return handle.read().strip()
    return os.environ["DB_PASSWORD"]


def connect():
    return psycopg.connect(host=os.environ["DB_HOST"], user=os.environ["DB_USER"], dbname=os.environ["DB_NAME"],
                           password=password(), connect_timeout=3, autocommit=True)


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
            with connect() as conn:
                count = conn.execute("SELECT count(*) FROM items").fetchone()[0]
            return self._send(200, {"status": "ok", "items": count})
        except Exception as exc:  # a health endpoint reports, it does not crash
            return self._send(503, {"status": "error", "error": str(exc)})

    def do_POST(self):
        try:
            with connect() as conn:
                conn.execute("INSERT INTO items (label) VALUES ('from the app')")
            return self._send(201, {"status": "created"})
        except Exception as exc:
            return self._send(503, {"status": "error", "error": str(exc)})

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
