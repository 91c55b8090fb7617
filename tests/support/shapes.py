"""Compose stacks shaped the ways users' stacks differ from ours, all generated from one template.

A Shape says how its database service is built and stored; ShapeStack writes that project (a compose file under a
name that needs `-f`, an env file, a secret), starts it, seeds it, and reads it back from inside the container, so
the same checks work whether or not the database's port is published.

Axes (docs/development.md, "Shape matrix"): the image built by compose (no `image:`) or named; a named volume or a
bind mount; the image's PGDATA or a custom one; the password by POSTGRES_PASSWORD or a _FILE secret; the superuser
`postgres` or another; the port published on loopback or not. SHAPES covers every value of every axis at least
once, and each pair of built/bind/custom PGDATA together at least once, in four stacks.
"""
import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from .ports import project as slot_project
from .runner import REPO
from .stack import base_image

SHOP = REPO / "examples" / "shop"
APP_SCRIPT = Path(__file__).resolve().parent / "shape_app.py"
APP_IMAGE = "stackops-shop/app:1"   # built by scripts/bootstrap.sh (examples/shop)
NAMED_DB_IMAGE = "stackops-shop/db:1"
DEFAULT_PGDATA = "/var/lib/postgresql/data"
# What a database keeps beside its rows, and what a restore must bring back (issue: DR lost these).
DB_SETTINGS = {"search_path": "app, public", "TimeZone": "Pacific/Auckland"}


@dataclass(frozen=True)
class Shape:
    name: str
    service: str = "db"
    built: bool = False        # the database image is built by compose from a Dockerfile, with no image: key
    bind: bool = False         # the data lives in a bind mount of a host directory, not a named volume
    pgdata: str = ""           # a custom PGDATA ('' keeps the image's DEFAULT_PGDATA)
    password_file: bool = True  # POSTGRES_PASSWORD_FILE with a compose secret, else POSTGRES_PASSWORD
    user: str = "postgres"     # POSTGRES_USER
    database: str = ""         # POSTGRES_DB ('' is the image's default: the user's name)
    published: bool = True     # the database's port published on 127.0.0.1

    @property
    def dbname(self):
        return self.database or self.user

    @property
    def data_dir(self):
        return self.pgdata or DEFAULT_PGDATA

    @property
    def mount_target(self):
        # A custom PGDATA below the mount point, the way the official image's docs suggest for volumes.
        return os.path.dirname(self.pgdata) if self.pgdata else DEFAULT_PGDATA


SHAPES = {
    shape.name: shape for shape in (
        Shape("built-bind", service="database", built=True, bind=True, pgdata="/srv/pg/main",
              password_file=False, user="owner", database="appdata"),
        Shape("named-unpublished", service="pg", published=False),
        Shape("built-volume", built=True, pgdata=DEFAULT_PGDATA + "/pgdata", user="app"),
        Shape("named-bind-env", service="postgresql", bind=True, password_file=False, published=False,
              database="ledger"),
    )
}


def compose_model(shape):
    """The compose project of a shape, as a dict (the one template every shape is generated from)."""
    db_env = {"POSTGRES_USER": shape.user, "POSTGRES_INITDB_ARGS": "--encoding=UTF8 --locale=C.UTF-8"}
    if shape.database:
        db_env["POSTGRES_DB"] = shape.database
    if shape.pgdata:
        db_env["PGDATA"] = shape.pgdata
    app_env = {"DB_HOST": shape.service, "DB_USER": shape.user, "DB_NAME": shape.dbname}
    if shape.password_file:
        db_env["POSTGRES_PASSWORD_FILE"] = "/run/secrets/db_password"
        app_env["DB_PASSWORD_FILE"] = "/run/secrets/db_password"
    else:
        db_env["POSTGRES_PASSWORD"] = "${DB_PASSWORD}"
        app_env["DB_PASSWORD"] = "${DB_PASSWORD}"
    db = {
        "environment": db_env,
        "volumes": ["%s:%s" % ("./pgroot" if shape.bind else "dbdata", shape.mount_target)],
        "healthcheck": {"test": ["CMD-SHELL", 'pg_isready -q -h 127.0.0.1 -U "$$POSTGRES_USER"'],
                        "interval": "2s", "timeout": "3s", "retries": 30, "start_period": "30s"},
        "stop_grace_period": "60s",
    }
    if shape.built:
        db["build"] = {"context": str(SHOP), "target": "db", "args": {"BASE_IMAGE": base_image()}}
    else:
        db["image"] = NAMED_DB_IMAGE
    if shape.published:
        db["ports"] = ["127.0.0.1:${DB_PORT}:5432"]
    app = {
        "image": APP_IMAGE,
        "command": ["python3", "-u", "/opt/shape/app.py"],
        "environment": app_env,
        "volumes": ["%s:/opt/shape/app.py:ro" % APP_SCRIPT],
        "depends_on": {shape.service: {"condition": "service_healthy"}},
        "ports": ["127.0.0.1:${APP_PORT}:8080"],
        "healthcheck": {"test": ["CMD", "python3", "-c",
                                 "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"],
                        "interval": "2s", "timeout": "3s", "retries": 30, "start_period": "5s"},
    }
    if shape.password_file:
        db["secrets"] = app["secrets"] = ["db_password"]
    model = {"name": "${SHAPE_PROJECT}", "services": {shape.service: db, "app": app}}
    if shape.password_file:
        model["secrets"] = {"db_password": {"file": "./secrets/db_password"}}
    if not shape.bind:
        model["volumes"] = {"dbdata": {}}
    return model


# The application's data: a schema the app finds only through the database's search_path, a role that owns and
# reads, and a second database in another encoding.
SEED_SQL = """
CREATE ROLE shape_reader NOLOGIN;
CREATE SCHEMA app;
CREATE TABLE app.items (id bigserial PRIMARY KEY, label text NOT NULL, at timestamptz NOT NULL DEFAULT now());
INSERT INTO app.items (label) SELECT 'item ' || g FROM generate_series(1, 500) g;
GRANT USAGE ON SCHEMA app TO shape_reader;
GRANT SELECT ON app.items TO shape_reader;
CREATE DATABASE reports ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
"""
REPORTS_SQL = """
CREATE TABLE daily (day date PRIMARY KEY, total numeric NOT NULL);
INSERT INTO daily SELECT d::date, 10 FROM generate_series('2026-01-01'::date, '2026-03-31', '1 day') d;
"""


class ShapeStack:
    """One shape's compose project in ``work``, isolated by project name and host ports. ``purpose`` (the test file's
    concern) is part of the project name: test files run side by side and may use the same shape."""

    def __init__(self, shape, work, db_port, app_port, purpose):
        self.shape = shape
        self.work = Path(work)
        self.project = slot_project("%s-%s" % (purpose, shape.name))
        self.db_port, self.app_port = db_port, app_port
        self.compose_file = self.work / "docker-compose.prod.yml"
        self.env_file = self.work / "shape.env"
        self.password = secrets.token_urlsafe(18)

    @property
    def service(self):
        return self.shape.service

    @property
    def app_url(self):
        return "http://127.0.0.1:%d/healthz" % self.app_port

    def write(self):
        self.work.mkdir(parents=True, exist_ok=True)
        self.compose_file.write_text(yaml.safe_dump(compose_model(self.shape), sort_keys=False))
        env = {"SHAPE_PROJECT": self.project, "DB_PORT": self.db_port, "APP_PORT": self.app_port}
        if not self.shape.password_file:
            env["DB_PASSWORD"] = self.password
        self.env_file.write_text("".join("%s=%s\n" % item for item in env.items()))
        if self.shape.password_file:
            (self.work / "secrets").mkdir(mode=0o700, exist_ok=True)
            secret = self.work / "secrets" / "db_password"
            secret.write_text(self.password + "\n")
            secret.chmod(0o644)  # bind-mounted into containers whose users are not root
        if self.shape.bind:
            (self.work / "pgroot").mkdir(exist_ok=True)
        return self

    def compose_args(self):
        return ["-f", str(self.compose_file), "--env-file", str(self.env_file)]

    def compose(self, *args, check=True, timeout=300):
        argv = ["docker", "compose", "--project-directory", str(self.work)] + self.compose_args() + list(args)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError("docker compose %s failed for %s (rc %s): %s" % (
                " ".join(args), self.project, done.returncode, (done.stderr or done.stdout).strip()[-3000:]))
        return done

    def up(self, *services):
        self.compose("up", "-d", "--wait", *services, timeout=600)
        return self

    def start(self):
        """From nothing to a healthy, seeded stack: the database first, its data, then the app that needs it."""
        self.write().down()
        return self.up(self.service).seed().up()

    def down(self):
        """Everything gone, data included: containers, the named volume, the bind-mounted directory's contents."""
        self.compose("down", "-v", "--remove-orphans", check=False)
        if self.shape.bind and (self.work / "pgroot").exists():
            shutil.rmtree(self.work / "pgroot")
            (self.work / "pgroot").mkdir()

    def fresh_server(self):
        """A new, empty server: what is left after losing the data, started again (the image's databases only)."""
        self.down()
        return self.up(self.service)

    def psql(self, query, dbname=None, check=True):
        """``query`` through psql inside the database container (works with no published port): its rows."""
        done = self.compose("exec", "-T", self.service, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At",
                            "-U", self.shape.user, "-d", dbname or self.shape.dbname, "-c", query, check=check)
        return [line.split("|") for line in done.stdout.splitlines() if line]

    def seed(self):
        for statement in SEED_SQL.strip().split(";\n"):
            self.psql(statement)
        for name, value in DB_SETTINGS.items():
            self.psql('ALTER DATABASE "%s" SET %s = %s' % (
                self.shape.dbname, name, ", ".join("'%s'" % part.strip() for part in value.split(","))))
        for statement in REPORTS_SQL.strip().split(";\n"):
            self.psql(statement, dbname="reports")
        return self

    def databases(self):
        return sorted(row[0] for row in self.psql("SELECT datname FROM pg_database WHERE NOT datistemplate"))

    def fingerprint(self, dbname=None):
        """{schema.table: [rows, md5 of the sorted rows]} of every user table of ``dbname``."""
        tables = self.psql("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n "
                           "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN "
                           "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
                           dbname=dbname)
        result = {}
        for (table,) in tables:
            rows = self.psql("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                             "FROM %s t" % table, dbname=dbname)
            result[table] = rows[0]
        return result

    def settings(self, dbname=None):
        """The database's own settings (ALTER DATABASE ... SET), as {name: value}."""
        rows = self.psql("SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = "
                         "s.setdatabase WHERE d.datname = current_database() AND s.setrole = 0", dbname=dbname)
        return dict(row[0].split("=", 1) for row in rows)

    def state(self):
        """Everything a recovery must bring back, for one equality check."""
        return {"databases": self.databases(), "settings": self.settings(),
                "data": {name: self.fingerprint(name) for name in (self.shape.dbname, "reports")}}

    def app_health(self):
        done = self.compose("exec", "-T", "app", "python3", "-c",
                            "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/healthz')"
                            ".read().decode())", check=False)
        return json.loads(done.stdout) if done.returncode == 0 else {"status": "error", "error": done.stderr[-500:]}
