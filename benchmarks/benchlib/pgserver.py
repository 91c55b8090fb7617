"""A benchmark-owned PostgreSQL 15 cluster on a free loopback port, and the test-data generator.

The cluster is configured like a modest production server (fsync on, archive_mode on so pgBackRest
can take physical backups) rather than like the test fixture (fsync off); every contender of the
backup/restore benchmark works against this one cluster and database.
"""
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from .report import PG_BINDIR

SERVER_SETTINGS = {
    "shared_buffers": "512MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "wal_level": "replica",
    "archive_mode": "on",
    # Replaced by pgBackRest's archive-push when the pgBackRest contender sets up its stanza.
    "archive_command": "/bin/true",
    "max_connections": "60",
    "max_wal_senders": "4",
}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_postgres(argv):
    """argv run as the postgres OS user when we are root (initdb, pg_ctl and pgbackrest refuse root)."""
    argv = [str(a) for a in argv]
    if os.geteuid() == 0:
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] + argv
    return argv


def chown_postgres(path):
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


class BenchCluster:
    def __init__(self, workdir, name="primary", port=None):
        self.base = Path(workdir) / ("pg-" + name)
        self.base.mkdir(parents=True, exist_ok=True)
        chown_postgres(self.base)
        self.datadir = self.base / "data"
        self.sockdir = self.base
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.user = "postgres"
        self.password = None
        self.password_file = Path(workdir) / "db_password"
        self.log = self.base / "server.log"

    # -------------------------------------------------------------- lifecycle
    def init(self):
        self.password = "bench-" + secrets.token_hex(12)
        self.password_file.write_text(self.password + "\n")
        os.chmod(self.password_file, 0o644)  # read by ansible as root and by nobody else that matters
        pwfile = self.base / "initpw"
        pwfile.write_text(self.password + "\n")
        chown_postgres(pwfile)
        try:
            subprocess.run(as_postgres([PG_BINDIR / "initdb", "-D", self.datadir, "-U", self.user,
                                        "--auth=scram-sha-256", "--pwfile", pwfile, "-E", "UTF8",
                                        "--locale=C.UTF-8"]), check=True, capture_output=True)
        finally:
            pwfile.unlink()
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write("\n# stackops benchmark settings\n")
            for key, value in SERVER_SETTINGS.items():
                conf.write("%s = '%s'\n" % (key, value))
        return self

    def options(self, extra=()):
        opts = ["-c listen_addresses=127.0.0.1", "-c port=%d" % self.port,
                "-c unix_socket_directories=%s" % self.sockdir]
        return " ".join(opts + list(extra))

    def start(self, extra=()):
        subprocess.run(as_postgres([PG_BINDIR / "pg_ctl", "-D", self.datadir, "-o", self.options(extra),
                                    "-l", self.log, "-w", "-t", "600", "start"]), check=True, capture_output=True)
        return self

    def start_argv(self, extra=()):
        return as_postgres([PG_BINDIR / "pg_ctl", "-D", self.datadir, "-o", self.options(extra),
                            "-l", self.log, "-w", "-t", "600", "start"])

    def stop(self, mode="fast"):
        subprocess.run(as_postgres([PG_BINDIR / "pg_ctl", "-D", self.datadir, "-m", mode, "-w", "stop"]),
                       capture_output=True, check=False)

    def destroy(self, keep_files=False):
        self.stop("immediate")
        if not keep_files:
            shutil.rmtree(self.base, ignore_errors=True)

    def quiesce(self, timeout=600, log=print):
        """Let the last contender's after-effects finish before the next one is timed.

        A restore writes over a GB of WAL that the archiver (pgBackRest's archive-push, which compresses each
        segment) keeps processing after the restore returned, and leaves dirty buffers behind: whoever ran next
        would pay for both. Wait until no segment is waiting to be archived, then CHECKPOINT.
        """
        status = self.datadir / "pg_wal" / "archive_status"
        deadline = time.monotonic() + timeout
        waited = time.monotonic()
        while any(status.glob("*.ready")) and time.monotonic() < deadline:
            time.sleep(0.2)
        if any(status.glob("*.ready")):
            log("  archiver still behind after %d s; going on" % timeout)
        with self.connect() as conn:
            conn.execute("CHECKPOINT")
        return round(time.monotonic() - waited, 1)

    # -------------------------------------------------------------- access
    @property
    def env(self):
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user, "PGPASSWORD": self.password}

    def connect(self, dbname="postgres"):
        import psycopg
        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=dbname, autocommit=True)

    def sql(self, statement, dbname="postgres", params=None):
        with self.connect(dbname) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else None

    def database_size(self, dbname):
        return self.sql("SELECT pg_database_size(%s)", params=(dbname,))[0][0]

    def drop_database(self, dbname):
        self.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % dbname.replace('"', '""'))


# ------------------------------------------------------------------ data

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TABLE customers (
    id          bigint PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    full_name   text NOT NULL,
    created_at  timestamptz NOT NULL,
    profile     jsonb NOT NULL
);
CREATE TABLE orders (
    id           bigint PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers (id),
    placed_at    timestamptz NOT NULL,
    status       text NOT NULL,
    total_cents  bigint NOT NULL,
    lines        jsonb NOT NULL
);
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE INDEX orders_placed_idx ON orders (placed_at);
CREATE TABLE attachments (
    id        bigint PRIMARY KEY,
    order_id  bigint NOT NULL REFERENCES orders (id),
    filename  text NOT NULL,
    sha256    text NOT NULL,
    content   bytea NOT NULL
);
CREATE INDEX attachments_order_idx ON attachments (order_id);
CREATE TABLE events (
    id           bigint PRIMARY KEY,
    occurred_at  timestamptz NOT NULL,
    kind         text NOT NULL,
    message      text NOT NULL
);
CREATE INDEX events_kind_time_idx ON events (kind, occurred_at);
"""

# One batch = 4k customers, 16k orders, 8k attachments (2-3 KiB random bytes each, so TOASTed), 16k events:
# about 40 MB with indexes; half of it incompressible bytea, the rest hex text and jsonb (about 2:1 with zstd).
BATCH = {"customers": 4000, "orders": 16000, "attachments": 8000, "events": 16000}

BATCH_SQL = """
INSERT INTO customers
SELECT g, 'user' || g || '.' || substr(md5(random()::text), 1, 10) || '@example.test',
       initcap(substr(md5(random()::text), 1, 8)) || ' ' || initcap(substr(md5(random()::text), 1, 12)),
       now() - random() * interval '1500 days',
       jsonb_build_object('tier', (ARRAY['free','pro','team','enterprise'])[1 + mod(g, 4)],
                          'locale', (ARRAY['en','de','fr','es','ja'])[1 + mod(g, 5)],
                          'api_key_hash', md5(random()::text) || md5(random()::text),
                          'tags', jsonb_build_array(substr(md5(random()::text), 1, 6), substr(md5(random()::text), 1, 6)),
                          'newsletter', random() < 0.5, 'score', round((random() * 1000)::numeric, 2))
FROM generate_series(%(c0)s::int + 1, %(c0)s::int + %(nc)s::int) AS g;

INSERT INTO orders
SELECT g, %(c0)s::int + 1 + mod(hashint8(g) & 2147483647, %(nc)s::int), now() - random() * interval '1000 days',
       (ARRAY['new','paid','shipped','delivered','refunded'])[1 + mod(g, 5)], (random() * 100000)::bigint,
       (SELECT jsonb_agg(jsonb_build_object('sku', substr(md5(random()::text || g || i), 1, 12),
                                            'qty', 1 + (random() * 5)::int,
                                            'price_cents', (random() * 20000)::int,
                                            'note', md5(random()::text || i)))
          FROM generate_series(1, 2 + mod(g, 3)) AS i)
FROM generate_series(%(o0)s::int + 1, %(o0)s::int + %(no)s::int) AS g;

INSERT INTO attachments
SELECT g, %(o0)s::int + 1 + mod(hashint8(g) & 2147483647, %(no)s::int), 'scan-' || g || '.bin', md5(random()::text) || md5(random()::text),
       gen_random_bytes(1024) || gen_random_bytes(1024) || gen_random_bytes(64 + mod(g, 900)::int)
FROM generate_series(%(a0)s::int + 1, %(a0)s::int + %(na)s::int) AS g;

INSERT INTO events
SELECT g, now() - random() * interval '90 days', (ARRAY['login','logout','view','purchase','error'])[1 + mod(g, 5)],
       'request ' || md5(random()::text) || ' from ' || (random() * 255)::int || '.' || (random() * 255)::int
         || ' took ' || (random() * 900)::int || 'ms trace=' || md5(random()::text) || md5(random()::text)
FROM generate_series(%(e0)s::int + 1, %(e0)s::int + %(ne)s::int) AS g;
"""


def _batch_params(index):
    return {"c0": index * BATCH["customers"], "nc": BATCH["customers"],
            "o0": index * BATCH["orders"], "no": BATCH["orders"],
            "a0": index * BATCH["attachments"], "na": BATCH["attachments"],
            "e0": index * BATCH["events"], "ne": BATCH["events"]}


def generate(cluster, dbname, target_mb, workers=2, log=print):
    """Create dbname and fill it in ~20 MB batches on `workers` connections until it reaches target_mb."""
    started = time.monotonic()
    cluster.drop_database(dbname)
    cluster.sql('CREATE DATABASE "%s"' % dbname)
    with cluster.connect(dbname) as conn:
        conn.execute(SCHEMA)
    target = target_mb * 1024 * 1024
    base_size = cluster.database_size(dbname)
    # Stop claiming batches once the size measured so far plus the batches still running reaches the
    # target (within half a batch), so the result lands near target_mb instead of overshooting.
    state = {"next": 0, "done": False, "error": None, "in_flight": 0, "size": base_size, "completed": 0}
    lock = threading.Lock()
    sql_text = BATCH_SQL  # no literal % in it (mod() instead), only %(name)s parameters

    def worker():
        try:
            with cluster.connect(dbname) as conn:
                while True:
                    with lock:
                        per_batch = ((state["size"] - base_size) / state["completed"]) if state["completed"] else 0
                        projected = state["size"] + (state["in_flight"] + 0.5) * per_batch
                        if state["done"] or state["error"] or projected >= target:
                            return
                        index = state["next"]
                        state["next"] += 1
                        state["in_flight"] += 1
                    with conn.transaction():
                        for statement in sql_text.split(";\n\n"):
                            if statement.strip():
                                conn.execute(statement, _batch_params(index))
                    size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
                    with lock:
                        state["in_flight"] -= 1
                        state["completed"] += 1
                        state["size"] = max(state["size"], size)
                        if size >= target:
                            state["done"] = True
        except Exception as exc:  # noqa: BLE001 - surfaced below
            state["error"] = exc

    threads = [threading.Thread(target=worker) for unused in range(max(1, workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    error = state["error"]
    if error is not None:
        raise error
    loaded = time.monotonic() - started
    log("  loaded %d batches in %.1f s; VACUUM (FREEZE, ANALYZE) and CHECKPOINT" % (state["next"], loaded))
    with cluster.connect(dbname) as conn:
        conn.execute("VACUUM (FREEZE, ANALYZE)")
        conn.execute("CHECKPOINT")
    rows = dict(cluster.sql("SELECT relname, n_live_tup FROM pg_stat_user_tables", dbname=dbname))
    return {"database": dbname, "target_mb": target_mb, "size_bytes": cluster.database_size(dbname),
            "batches": state["next"], "rows": rows, "generate_s": round(time.monotonic() - started, 1)}
