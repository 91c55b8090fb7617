"""Demo API: a small service that really reads and writes PostgreSQL.

Endpoints: GET /health, GET /api/v1/db/health, GET /metrics,
POST /api/v1/records, GET /api/v1/records/count.
"""
import json
import os
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

VERSION = os.environ.get("API_VERSION", "1")
HOSTNAME = socket.gethostname()
STARTED = time.time()
READY = threading.Event()
STATS = {"requests": 0, "errors": 0, "records_created": 0}
STATS_LOCK = threading.Lock()


def conninfo():
    with open(os.environ["DB_PASSWORD_FILE"], encoding="utf-8") as handle:
        password = handle.read().strip()
    return psycopg.conninfo.make_conninfo(
        host=os.environ.get("DB_HOST", "postgres"),
        port=os.environ.get("DB_PORT", "5432"),
        dbname=os.environ.get("DB_NAME", "appdb"),
        user=os.environ.get("DB_USER", "app"),
        password=password,
        connect_timeout=3,
        application_name="demo-api",
    )


def connect():
    return psycopg.connect(conninfo(), autocommit=True)


def prepare_schema():
    """Retry until the database accepts the schema; /health stays 503 until then."""
    while True:
        try:
            with connect() as conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS records ("
                    " id bigserial PRIMARY KEY,"
                    " payload jsonb NOT NULL,"
                    " created_at timestamptz NOT NULL DEFAULT now())"
                )
            READY.set()
            print(f"api {VERSION} ready on {HOSTNAME}", flush=True)
            return
        except (psycopg.Error, OSError) as exc:
            print(f"database not ready: {exc}".strip(), flush=True)
            time.sleep(1)


class Handler(BaseHTTPRequestHandler):
    server_version = "stackops-demo-api"
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection must not hold a stop (which waits for every handler) until it is killed.
    timeout = 5

    def log_message(self, fmt, *args):  # keep container logs to errors and lifecycle
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with STATS_LOCK:
            STATS["requests"] += 1
            if status >= 500:
                STATS["errors"] += 1

    def do_GET(self):
        routes = {
            "/health": self.health,
            "/api/v1/db/health": self.db_health,
            "/metrics": self.metrics,
            "/api/v1/records/count": self.count_records,
        }
        handler = routes.get(self.path.split("?", 1)[0])
        if handler is None:
            self.reply(404, {"error": "not found", "path": self.path})
        else:
            handler()

    def do_POST(self):
        if self.path.split("?", 1)[0] != "/api/v1/records":
            self.reply(404, {"error": "not found", "path": self.path})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            payload = json.loads(self.rfile.read(length) or b"{}")
            with connect() as conn:
                row = conn.execute(
                    "INSERT INTO records (payload) VALUES (%s) RETURNING id",
                    [psycopg.types.json.Jsonb(payload)],
                ).fetchone()
        except ValueError as exc:
            self.reply(400, {"error": f"invalid JSON: {exc}"})
            return
        except psycopg.Error as exc:
            self.reply(503, {"error": str(exc).strip()})
            return
        with STATS_LOCK:
            STATS["records_created"] += 1
        self.reply(201, {"id": row[0], "served_by": HOSTNAME})

    def health(self):
        status = "healthy" if READY.is_set() else "starting"
        self.reply(200 if READY.is_set() else 503, {
            "status": status, "version": VERSION, "hostname": HOSTNAME,
            "uptime_seconds": round(time.time() - STARTED, 1),
        })

    def db_health(self):
        started = time.monotonic()
        try:
            with connect() as conn:
                conn.execute("SELECT 1").fetchone()
                server_version = conn.info.server_version
            latency_ms = round((time.monotonic() - started) * 1000, 2)
            self.reply(200, {"status": "healthy", "db": {
                "connected": True, "latency_ms": latency_ms, "server_version": server_version}})
        except psycopg.Error as exc:
            self.reply(503, {"status": "unhealthy", "db": {"connected": False, "error": str(exc).strip()}})

    def count_records(self):
        try:
            with connect() as conn:
                count = conn.execute("SELECT count(*) FROM records").fetchone()[0]
            self.reply(200, {"count": count})
        except psycopg.Error as exc:
            self.reply(503, {"error": str(exc).strip()})

    def metrics(self):
        with STATS_LOCK:
            snapshot = dict(STATS)
        lines = [
            "# HELP demo_api_requests_total HTTP requests served.",
            "# TYPE demo_api_requests_total counter",
            f"demo_api_requests_total {snapshot['requests']}",
            "# HELP demo_api_errors_total HTTP responses with status >= 500.",
            "# TYPE demo_api_errors_total counter",
            f"demo_api_errors_total {snapshot['errors']}",
            "# HELP demo_api_records_created_total Records inserted by this replica.",
            "# TYPE demo_api_records_created_total counter",
            f"demo_api_records_created_total {snapshot['records_created']}",
            "# HELP demo_api_ready Whether the schema is ready (1) or not (0).",
            "# TYPE demo_api_ready gauge",
            f"demo_api_ready {1 if READY.is_set() else 0}",
            f'demo_api_info{{version="{VERSION}",hostname="{HOSTNAME}"}} 1',
        ]
        self.reply(200, ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4")


class Server(ThreadingHTTPServer):
    # Handler threads are joined on close: a stop finishes the requests in flight instead of cutting their replies.
    daemon_threads = False

    def handle_error(self, request, client_address):
        # Health probes and load balancers drop idle keep-alive connections; not an error.
        pass


def main():
    threading.Thread(target=prepare_schema, daemon=True).start()
    server = Server(("0.0.0.0", int(os.environ.get("API_PORT", "8000"))), Handler)

    def stop(_signum, _frame):
        # PID 1 ignores SIGTERM by default. Stop accepting at once, finish what is in flight, then exit: a rolling
        # restart must not cut a reply half-way. shutdown() waits for serve_forever, so it runs in its own thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"api {VERSION} listening on {HOSTNAME}:8000", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
