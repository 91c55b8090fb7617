"""Backup and restore modules on a real cluster: a schema that exercises what dumps get wrong, module calls one by
one or batched in one playbook run, and readers of what they left (sets, manifests, scratch databases)."""
import json
import sys
from pathlib import Path

import ansible_runner
import yaml

from .digest import content_fingerprint
from .module_docs import module_options
from .runner import REPO, RunResult, _private_dir, run_module, runner_env

RICH_SCHEMA = r"""
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE SCHEMA "Sales Ünïcode";
CREATE TABLE "Sales Ünïcode"."MixedCase" (
    id bigserial PRIMARY KEY,
    "Name" citext NOT NULL,
    doc jsonb,
    blob bytea,
    big text,
    at timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00'
);
INSERT INTO "Sales Ünïcode"."MixedCase" ("Name", doc, blob, big)
SELECT 'Ünïcødé ' || i || ' 😀 日本',
       jsonb_build_object('i', i, 'emoji', '😀', 'nested', jsonb_build_array(i, 'ü', NULL, 1.5e10)),
       decode(md5(i::text) || md5((i * 7)::text), 'hex') || '\x00ff'::bytea,
       repeat(md5(i::text), 300)
FROM generate_series(1, 1500) AS i;
CREATE TABLE public.plain (id int PRIMARY KEY, note text, CONSTRAINT note_len CHECK (length(note) < 100));
INSERT INTO public.plain SELECT i, 'row; ''quoted'' "x" ' || i FROM generate_series(1, 300) AS i;
CREATE TABLE public.empty_one (x int);
CREATE SEQUENCE public.counter START 42;
SELECT nextval('public.counter'), nextval('public.counter');
CREATE VIEW public.v_summary AS SELECT count(*) AS n, max(id) AS top FROM "Sales Ünïcode"."MixedCase";
CREATE FUNCTION public.name_digest(t text) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT encode(digest(t, 'sha256'), 'hex') $$;
"""


RICH_TEMPLATE = "backup_tests_rich_template"


def create_db(cluster, name, schema_sql=RICH_SCHEMA):
    """A fresh database with ``schema_sql``. The rich schema is built once per cluster and copied from a template
    database (CREATE DATABASE ... TEMPLATE is a file copy), which gives the same content in a fraction of the time."""
    from psycopg import sql
    with cluster.connect() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if schema_sql == RICH_SCHEMA:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (RICH_TEMPLATE,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(RICH_TEMPLATE)))
                with cluster.connect(RICH_TEMPLATE) as template:
                    template.execute(RICH_SCHEMA)
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(RICH_TEMPLATE)))
            return
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    if schema_sql:
        with cluster.connect(name) as conn:
            conn.execute(schema_sql)


def fingerprint(cluster, name):
    """Independent of the code under test: ordered md5 of every table's rows, plus sequences, view, function."""
    with cluster.connect(name) as conn:
        return content_fingerprint(conn)


def db_exists(cluster, name):
    return bool(cluster.sql("SELECT 1 FROM pg_database WHERE datname = %s", params=(name,)))


def module(name, cluster, backup_dir, check=False, **args):
    """Module ``name`` with the cluster's connection options and backup_dir where it takes them (like ``batch``)."""
    options = module_options(name)
    params = {key: value for key, value in cluster.params(backup_dir=str(backup_dir)).items() if key in options}
    params.update(args)
    return run(name, params, check=check)


def run(name, params, check=False):
    """run_module, with ``failed`` set from the event type (ignored failures do not always carry it)."""
    res = run_module("stackops.runbooks.%s" % name, params, check=check)
    res["failed"] = any(e.get("event") == "runner_on_failed" for e in res["_run"].events)
    return res


def step(name, module_name, check=False, **args):
    """One task of a batch: ``module_name`` (pg_backup, ...) called with ``args``; a later step can use an earlier
    result in its args as a Jinja expression, e.g. ``backup_id="{{ b1.backup_id }}"``."""
    return dict(name=name, module=module_name, check=check, args=args)


def batch(steps, common=None, label="backup-batch", timeout=900):
    """Run several module calls in ONE ansible-runner playbook run, in order, and return {step name: result}.

    Each call is still a real module run on localhost (same as run_module); only the ansible-playbook start-up,
    which dominates a short module call, is shared. Every step runs even when an earlier one failed
    (ignore_errors), and ``failed`` is set from the event type like ``run``. A step's ``check=True`` runs it in
    check mode (the task keyword, as roles do).
    """
    private = _private_dir(label)
    tasks = []
    for item in steps:
        # ``common`` goes where it applies, as the play header's module_defaults do: each module gets the common
        # options it takes (pg_backup_info, which only reads the catalog, takes backup_dir and no connection).
        options = module_options(item["module"])
        args = {key: value for key, value in (common or {}).items() if key in options}
        args.update(item["args"])
        task = {"name": item["name"], "stackops.runbooks.%s" % item["module"]: args, "register": item["name"],
                "ignore_errors": True}
        if item["check"]:
            task["check_mode"] = True
        tasks.append(task)
    play = [{"name": "batch under test", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    playbook = private / "batch.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False, allow_unicode=True))
    runner = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(REPO), playbook=str(playbook),
        inventory="localhost ansible_connection=local ansible_python_interpreter=%s" % sys.executable,
        envvars=runner_env(), quiet=True, timeout=timeout)
    result = RunResult(runner, private)
    out = {}
    for event in result.events:
        if event.get("event") not in ("runner_on_ok", "runner_on_failed"):
            continue
        data = event.get("event_data", {})
        res = dict(data.get("res", {}))
        res["failed"] = event["event"] == "runner_on_failed"
        res["_run"] = result
        out[data.get("task")] = res
    missing = [item["name"] for item in steps if item["name"] not in out]
    assert not missing, "steps %s produced no result (%s); stdout:\n%s" % (missing, result.status, result.stdout)
    return out


def cluster_batch(cluster, backup_dir, steps, **kwargs):
    """``batch`` with the cluster's connection options and backup_dir on every step."""
    return batch(steps, common=cluster.params(backup_dir=str(backup_dir)), **kwargs)


def stackops_result(run_result):
    """The stackops_result a playbook published, as the CLI and AWX read it: playbook_on_stats artifact_data.

    Also checked against stackops.events.RunTracker, the CLI's own reader, so the two never drift apart.
    """
    from stackops.events import RunTracker
    stats = [e for e in run_result.events if e.get("event") == "playbook_on_stats"]
    assert stats, "no playbook_on_stats event; stdout:\n%s" % run_result.stdout
    published = (stats[-1]["event_data"].get("artifact_data") or {}).get("stackops_result")
    assert isinstance(published, dict), "no stackops_result in artifact_data: %r" % stats[-1]["event_data"]
    tracker = RunTracker()
    for event in run_result.events:
        tracker.handle(event)
    assert tracker.result == published, (tracker.result, published)
    return published


def backup_sets(backup_dir):
    """Directory names in backup_dir other than lock files."""
    return sorted(p.name for p in Path(backup_dir).iterdir() if not p.name.startswith("."))


def manifest(backup_dir, backup_id):
    return json.loads((Path(backup_dir) / backup_id / "manifest.json").read_text())


def scratch_databases(cluster):
    return [r[0] for r in cluster.sql("SELECT datname FROM pg_database WHERE datname ~ '_(verify|restore|old)_[0-9a-f]{8}$'")]
