"""A throwaway PostgreSQL 15 cluster on a free loopback port, for module tests."""
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BINDIR = Path(os.environ.get("STACKOPS_PG_BINDIR", "/usr/lib/postgresql/15/bin"))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(argv, **kwargs):
    if os.geteuid() == 0:
        argv = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] + argv
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


class PgCluster:
    def __init__(self):
        if not (BINDIR / "initdb").exists():
            raise RuntimeError("PostgreSQL server binaries missing at %s: run scripts/bootstrap.sh" % BINDIR)
        self.bindir = BINDIR
        self.datadir = Path(tempfile.mkdtemp(prefix="stackops-pg-"))
        self.port = free_port()
        self.host = "127.0.0.1"
        self.user = "postgres"
        self.password = "pw-" + secrets.token_hex(12)
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres", "postgres")

    def start(self):
        pwfile = self.datadir.parent / (self.datadir.name + ".pw")
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        try:
            _as_postgres([str(self.bindir / "initdb"), "-D", str(self.datadir / "data"), "-U", self.user,
                          "--auth=scram-sha-256", "--pwfile", str(pwfile), "-E", "UTF8", "--locale=C.UTF-8"])
        finally:
            pwfile.unlink()
        opts = "-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off" % (
            self.port, self.datadir)
        _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.datadir / "data"), "-o", opts,
                      "-l", str(self.datadir / "server.log"), "-w", "start"])
        return self

    def stop(self):
        try:
            _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.datadir / "data"), "-m", "immediate", "-w", "stop"])
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.datadir, ignore_errors=True)

    def params(self, **extra):
        """Module connection options for this cluster."""
        params = {"login_host": self.host, "login_port": self.port, "login_user": self.user,
                  "login_password": self.password, "tools_bindir": str(self.bindir)}
        params.update(extra)
        return params

    def connect(self, dbname="postgres", **kwargs):
        import psycopg
        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=dbname, autocommit=True, **kwargs)

    def sql(self, statement, dbname="postgres", params=None):
        with self.connect(dbname) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else None
