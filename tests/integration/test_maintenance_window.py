"""The maintenance role end to end on the real demo stack (playbooks/maintenance.yml via ansible-runner).

Writes keep arriving through the frontend during the window; the tests check the maintenance page,
that writes resume, that no row is lost, that bloat is reclaimed, and that a failing step rolls back.
"""
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

import psycopg
import pytest

from support import stack as stack_support
from support.digest import content_fingerprint
from support.ports import project
from support.wait import until
from support.runner import run_playbook

pytestmark = pytest.mark.stack

# A tag of our own (per test slot), so re-pointing it never touches images other stacks or checkouts run.
API_TAG = project("e-test")


def use_own_api_tag(test_stack):
    """Run the api from our own tag (a copy of stackops-demo/api:1), so the rollback test can move it."""
    if "API_TAG=%s" % API_TAG not in test_stack.env_file.read_text():
        with open(test_stack.env_file, "a") as handle:
            handle.write("API_TAG=%s\n" % API_TAG)
    if subprocess.run(["docker", "image", "inspect", "stackops-demo/api:%s" % API_TAG], capture_output=True).returncode:
        subprocess.run(["docker", "tag", "stackops-demo/api:1", "stackops-demo/api:%s" % API_TAG], check=True)
    test_stack.up()


@pytest.fixture(scope="session")
def stack(docker_engine):
    test_stack = stack_support.TestStack()
    test_stack.write_config()
    use_own_api_tag(test_stack)
    yield test_stack
    if os.environ.get("STACKOPS_KEEP_STACK") != "1":
        test_stack.down()
        subprocess.run(["docker", "rmi", "stackops-demo/api:%s" % API_TAG], check=False, capture_output=True)
        # images the rollback test built (only ours: they carry its label)
        leftovers = subprocess.run(["docker", "images", "-q", "--filter", "label=stackops.test.rollback=%s" % API_TAG],
                                   capture_output=True, text=True).stdout.split()
        if leftovers:
            subprocess.run(["docker", "rmi"] + leftovers, check=False, capture_output=True)


def db(stack):
    return psycopg.connect(host="127.0.0.1", port=stack.postgres_port, user="app", password=stack.password,
                           dbname="appdb", autocommit=True)


def count_records(stack):
    with db(stack) as conn:
        return conn.execute("SELECT count(*) FROM records").fetchone()[0]


def post_record(stack, payload):
    request = urllib.request.Request(stack.frontend_url + "/api/v1/records", method="POST",
                                     data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return None, str(exc)


class Writer(threading.Thread):
    """POSTs records through the frontend until stopped; bounded in count and time."""

    def __init__(self, stack, max_requests=3000, max_seconds=400):
        super().__init__(daemon=True)
        self.stack, self.max_requests, self.max_seconds = stack, max_requests, max_seconds
        self.stop = threading.Event()
        self.results = []  # (monotonic time, status, body)

    def run(self):
        end = time.monotonic() + self.max_seconds
        for number in range(self.max_requests):
            if self.stop.is_set() or time.monotonic() > end:
                return
            status, body = post_record(self.stack, {"writer": number})
            self.results.append((time.monotonic(), status, body))
            time.sleep(0.05)


def window(stack, label, **extravars):
    base = {
        # Only our own (never existing) label: pruning must not touch other stacks' leftovers on a shared engine.
        "stackops_maintenance_prune_filters": {"until": "168h", "label": "stackops.test=%s" % stack.project},
        "stackops_maintenance_update_pull": False,
        "stackops_backup_tools_location": "compose",
    }
    base.update(extravars)
    return run_playbook("maintenance.yml", inventory=stack.inventory, extravars=base, label=label)


def report(run):
    results = run.task_results("Build the report")
    assert results, "no report built; failed tasks %s\n%s" % (run.failed_tasks, run.stdout[-4000:])
    return results[-1]["ansible_facts"]["stackops_result"]


def maintenance_flag(stack):
    return stack.compose("exec", "-T", "frontend", "sh", "-c",
                         "test -e /var/lib/stackops-maintenance/on && echo on || echo off").stdout.strip()


def api_image_id(stack):
    container = stack.compose("ps", "-q", "api").stdout.split()[0]
    return subprocess.run(["docker", "inspect", "--format", "{{.Image}}", container], check=True,
                          capture_output=True, text=True).stdout.strip()


def test_weekly_window_under_live_writes(stack):
    stack.wait_http("/health")
    rows_before = count_records(stack)
    writer = Writer(stack)
    writer.start()
    until(lambda: any(status == 201 for dummy, status, dummy2 in writer.results), "the writer's first write")
    run = window(stack, "maint-weekly", stackops_maintenance_level="weekly")
    finished = time.monotonic()
    # writes must resume: wait for successful POSTs after the window, then stop the writer
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(1 for t, s, _ in writer.results if t > finished and s == 201) < 5:
        time.sleep(0.2)
    writer.stop.set()
    writer.join(10)

    assert run.status == "successful", (run.failed_tasks, run.stdout[-4000:])
    result = report(run)
    assert result["status"] == "ok"
    assert [d["name"] for d in result["done"]] == ["vacuum_analyze", "docker_prune", "log_cleanup"]
    assert result["backup_id"] and result["maintenance_mode"] == "off"

    statuses = [s for _, s, _ in writer.results]
    maintenance_pages = [b for _, s, b in writer.results if s == 503]
    assert maintenance_pages and all("Down for maintenance" in b for b in maintenance_pages), statuses[-20:]
    assert sum(1 for t, s, _ in writer.results if t > finished and s == 201) >= 5, "writes did not resume"
    # every write that was acknowledged is in the database, and nothing else was
    assert count_records(stack) == rows_before + statuses.count(201)
    assert maintenance_flag(stack) == "off"
    assert stack.http("/health")[0] == 200


def test_monthly_window_reclaims_bloat(stack):
    with db(stack) as conn:
        conn.execute("DROP TABLE IF EXISTS bloat_e")
        conn.execute("CREATE TABLE bloat_e (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO bloat_e SELECT g, repeat('b', 300) FROM generate_series(1, 40000) g")
        conn.execute("UPDATE bloat_e SET pad = repeat('c', 300) WHERE id % 2 = 0")
        conn.execute("DELETE FROM bloat_e WHERE id % 4 <> 0")
        size_before = conn.execute("SELECT pg_total_relation_size('bloat_e')").fetchone()[0]
    rows_before = count_records(stack)

    run = window(stack, "maint-monthly", stackops_maintenance_level="monthly",
                 stackops_maintenance_allow_exclusive_locks=True)
    assert run.status == "successful", (run.failed_tasks, run.stdout[-4000:])
    result = report(run)
    done = {d["name"]: d for d in result["done"]}
    assert list(done) == ["vacuum_full", "reindex", "vacuum_analyze", "docker_prune", "log_cleanup"]
    assert "bloat_e" in done["vacuum_full"]["tables"]
    with db(stack) as conn:
        size_after = conn.execute("SELECT pg_total_relation_size('bloat_e')").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM bloat_e").fetchone()[0] == 10000
    assert size_after < size_before / 2
    assert done["vacuum_full"]["reclaimed_bytes"] >= (size_before - size_after) * 0.9
    assert result["reclaimed_bytes"] > 0
    assert count_records(stack) == rows_before
    with db(stack) as conn:
        conn.execute("DROP TABLE bloat_e")


# The new api image's "migration": before the app starts it rewrites and deletes rows of appdb and adds a table,
# the way a release's migration would, and leaves a witness row in the postgres database (which the rollback does
# not restore), so the test knows the window really changed data before it failed.
MIGRATION = """
import sys
import time
sys.path.insert(0, "/opt/api")
import app

for attempt in range(60):
    try:
        with app.connect() as conn:
            changed = conn.execute("UPDATE records SET payload = payload || jsonb_build_object('migrated', true)").rowcount
            changed += conn.execute("DELETE FROM records WHERE id % 3 = 0").rowcount
            conn.execute("CREATE TABLE IF NOT EXISTS migrated_from_release (note text)")
            conn.execute("INSERT INTO migrated_from_release VALUES ('added by the release')")
        with app.psycopg.connect(app.conninfo().replace("dbname=appdb", "dbname=postgres"), autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS stackops_test_migrations (label text, changed int)")
            conn.execute("INSERT INTO stackops_test_migrations VALUES (%s, %s)", ("LABEL", changed))
        break
    except app.psycopg.OperationalError:
        time.sleep(1)
"""


def app_fingerprint(stack):
    with db(stack) as conn:
        return content_fingerprint(conn)


def migrations_witnessed(stack, label):
    with psycopg.connect(host="127.0.0.1", port=stack.postgres_port, user="app", password=stack.password,
                         dbname="postgres", autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('stackops_test_migrations')").fetchone()[0] is None:
            return []
        return [row[0] for row in conn.execute("SELECT changed FROM stackops_test_migrations WHERE label = %s",
                                               (label,))]


def test_failing_step_rolls_back_images_and_data(stack, tmp_path):
    use_own_api_tag(stack)  # another fixture of the session may have rewritten the env file
    original_image = api_image_id(stack)
    with db(stack) as conn:
        conn.execute("INSERT INTO records (payload) SELECT jsonb_build_object('seed', i) FROM generate_series(1, 90) i")
    rows_before = count_records(stack)
    before = app_fingerprint(stack)
    label = "rollback-%s" % time.time()
    # A new image for our own tag whose start migrates data: the rolling update really switches the api to it.
    (tmp_path / "migrate.py").write_text(MIGRATION.replace("LABEL", label))
    (tmp_path / "Dockerfile").write_text(
        "FROM stackops-demo/api:1\nLABEL stackops.test.rollback=%s stackops.test.build=%s\n"
        "COPY migrate.py /opt/api/migrate.py\n"
        'CMD ["sh", "-c", "python3 /opt/api/migrate.py && exec python3 -u /opt/api/app.py"]\n' % (API_TAG, label))
    subprocess.run(["docker", "build", "-q", "-t", "stackops-demo/api:%s" % API_TAG, str(tmp_path)], check=True,
                   capture_output=True)
    new_image = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", "stackops-demo/api:%s" % API_TAG],
                               check=True, capture_output=True, text=True).stdout.strip()
    assert new_image != original_image
    try:
        run = window(stack, "maint-rollback", stackops_maintenance_tasks=[
            {"name": "rolling_update", "services": ["api"]},
            "vacuum_analyze",
            {"name": "reindex", "tables": ["public.no_such_table"]},
        ])
        assert run.status == "failed"
        result = report(run)
        assert result["status"] == "rolled_back"
        assert result["failed"]["step"] == "reindex" and "no_such_table" in result["failed"]["message"]
        assert [d["name"] for d in result["done"]] == ["rolling_update", "vacuum_analyze"]
        # The release's migration ran inside the window and changed rows before the failing step ...
        changed = migrations_witnessed(stack, label)
        assert changed and all(count > 0 for count in changed), changed
        # ... and the rollback put back every row as it was before the window, judged by the data itself.
        assert app_fingerprint(stack) == before
        assert result["rollback"]["images_restored"] == ["api"]
        assert result["rollback"]["database_restored"] is True
        assert result["maintenance_mode"] == "off"
        assert api_image_id(stack) == original_image
        assert count_records(stack) == rows_before
        assert maintenance_flag(stack) == "off"
        assert stack.http("/health")[0] == 200
        assert stack.http("/api/v1/db/health")[0] == 200
        failure = run.task_results("Fail the run after a rollback", event_types=("runner_on_failed",))[-1]["msg"]
        assert "Rolled back: images of api" in failure and "restored from backup" in failure
    finally:
        subprocess.run(["docker", "tag", original_image, "stackops-demo/api:%s" % API_TAG], check=False)
        subprocess.run(["docker", "rmi", new_image], check=False, capture_output=True)


def test_long_transaction_aborts_before_anything_changes(stack):
    holder = db(stack)
    holder.autocommit = False
    holder.execute("SELECT txid_current()")
    holder_pid = holder.info.backend_pid
    try:
        with db(stack) as conn:  # older than stackops_maintenance_long_xact_age, by the server's own clock
            until(lambda: conn.execute("SELECT now() - xact_start > interval '1.5 seconds' FROM pg_stat_activity "
                                            "WHERE pid = %s", (holder_pid,)).fetchone()[0], "the transaction to age")
        run = window(stack, "maint-longxact", stackops_maintenance_tasks=["vacuum_full"],
                     stackops_maintenance_allow_exclusive_locks=True, stackops_maintenance_long_xact_age=1,
                     stackops_maintenance_long_xact_wait=4, stackops_maintenance_long_xact_action="wait")
    finally:
        holder.rollback()
        holder.close()
    assert run.status == "failed"
    assert run.failed_tasks == ["Abort when long transactions are still open"]
    message = run.task_results("Abort when long transactions are still open",
                               event_types=("runner_on_failed",))[-1]["msg"]
    assert "older than 1 s" in message and "after waiting 4 s" in message and "Nothing was changed" in message
    assert not run.task_results("Pre-maintenance backup (stackops.runbooks.backup, verified)")
    assert not run.task_results("PostgreSQL vacuum_full")
    assert maintenance_flag(stack) == "off"


def test_deadline_already_passed_starts_nothing(stack):
    run = window(stack, "maint-deadline", stackops_maintenance_level="weekly", stackops_maintenance_deadline="0")
    assert run.status == "successful", run.stdout[-3000:]
    result = report(run)
    assert result["status"] == "skipped" and result["done"] == [] and result["backup_id"] is None
    assert [s["name"] for s in result["skipped"]] == ["vacuum_analyze", "docker_prune", "log_cleanup"]
    assert all("deadline" in s["reason"] for s in result["skipped"])
    assert maintenance_flag(stack) == "off"
