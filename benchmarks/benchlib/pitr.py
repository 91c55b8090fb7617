"""Our physical backup and point-in-time recovery, driven through `stackops` on an isolated demo stack.

The PITR modules (plugins/module_utils/pitr.py, docs/pitr.md) work on the database of a compose service: Barman
streams its WAL over the replication protocol and a recovery swaps the service's data volume. So these contenders
run on their own copy of examples/stack (compose project BENCH_PITR_PROJECT, default bench-pitr, on ports
56640-56649 only) loaded by the same generator with the same size as the host cluster, while pgBackRest keeps
running on the host cluster: it needs the data directory and archive_command on the machine it runs on.
"""
import datetime
import json
import os
import re
import subprocess
import time

from . import pgserver
from .contenders import last_json, task_results
from .measure import median, run_timed
from .settings import ansible_env, env_int, log, tool
from .stack import BenchStack

PROJECT = os.environ.get("BENCH_PITR_PROJECT", "bench-pitr")
PG_PORT = env_int("BENCH_PITR_PG_PORT", 56640)
FRONTEND_PORT = PG_PORT + 1  # never started (only the postgres service runs), but the env file names one
DBNAME = "appdb"  # the stack's own database: the generator replaces it
# Settings of the host cluster that a reload or one restart can apply, so both servers hold the data alike. WAL
# archiving is the modules' business (streaming to Barman), not the benchmark's.
SERVER_SETTINGS = {key: pgserver.SERVER_SETTINGS[key] for key in (
    "shared_buffers", "maintenance_work_mem", "max_wal_size", "checkpoint_timeout")}
# The settings every stackops run here gets: no cron entry in /etc/cron.d (the receiver runs for this run only).
BASE_VARS = {"stackops_pitr_cron_file": ""}
# What the timed PITR restore uses: an operator in an incident brings the service back first and takes the next
# base backup afterwards (`stackops backup --physical`), so the restore row is recovery + check + swap + start.
INCIDENT_VARS = {"stackops_pitr_backup_after_restore": False}
# The warm standby contender: set up by an untimed `pitr enable`, promoted by the timed restore, not re-seeded in it.
STANDBY_VARS = {"stackops_pitr_standby": True}
STANDBY_RESTORE_VARS = {"stackops_pitr_standby": True, "stackops_pitr_standby_reseed_after_restore": False}


class StackDb:
    """The stack's PostgreSQL seen from the host, with the interface pgserver.generate() uses."""

    def __init__(self, port, user, password):
        self.host, self.port, self.user, self.password = "127.0.0.1", port, user, password

    def connect(self, dbname="postgres"):
        import psycopg
        # No parallel VACUUM/CREATE INDEX workers for the loader: their shared memory lives in the container's
        # 64 MB /dev/shm. Only the loader's sessions get this; the server's settings stay as configured.
        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=dbname, autocommit=True, connect_timeout=10,
                               options="-c max_parallel_maintenance_workers=0")

    def sql(self, statement, dbname="postgres", params=None):
        with self.connect(dbname) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else None

    def database_size(self, dbname):
        return self.sql("SELECT pg_database_size(%s)", params=(dbname,))[0][0]

    def drop_database(self, dbname):
        self.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % dbname.replace('"', '""'))

    def wait(self, timeout=300):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sql("SELECT 1")
                return
            except Exception:  # noqa: BLE001 - retried until the deadline, then raised
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


class PitrBench:
    def __init__(self, workdir):
        self.workdir = workdir
        self.stack = BenchStack(workdir, project=PROJECT, postgres_port=PG_PORT, frontend_port=FRONTEND_PORT)
        self.inventory = workdir / "inventory-pitr"
        self.state = workdir / "stackops-state-pitr"
        self.env = ansible_env(self.state)
        self.pitr_dir = workdir / "backups-pitr"  # the role's default: <stackops_backup_dir>-pitr
        password = (self.stack.dir / "secrets" / "db_password").read_text().strip()
        self.db = StackDb(PG_PORT, "app", password)
        self.started = False
        self.backup_ids = []
        # Per run, where Barman's time went (from its log): {"backup": [...], "restore": [...]}.
        self.profiles = {"backup": [], "restore": []}

    # -------------------------------------------------------------- the stack
    def start(self):
        self.stack.write_env()
        self.stack.down()
        self._remove_recovery_volumes()
        up = self.stack.compose("up", "-d", "--wait", "postgres", check=False)
        self.started = True
        if up.returncode != 0:
            raise RuntimeError("docker compose up of project %s failed: %s" % (
                PROJECT, (up.stderr or up.stdout).strip()[-800:]))
        self.db.wait()
        for key, value in SERVER_SETTINGS.items():
            self.db.sql("ALTER SYSTEM SET %s = '%s'" % (key, value))
        restarted = self.stack.compose("restart", "postgres", check=False)
        if restarted.returncode != 0:
            raise RuntimeError("restart of %s/postgres failed: %s" % (PROJECT, restarted.stderr.strip()[-800:]))
        self.db.wait()
        self.stack.write_inventory(self.inventory, hosts=1, prefix=None)

    def generate(self, target_mb, workers):
        return pgserver.generate(self.db, DBNAME, target_mb, workers=workers, log=log)

    def row_counts(self, tables):
        sql = " UNION ALL ".join("SELECT '%s', count(*) FROM %s" % (t, t) for t in tables)
        return {name: int(count) for name, count in self.db.sql(sql, dbname=DBNAME)}

    def checkpoint(self):
        self.db.sql("CHECKPOINT")

    # -------------------------------------------------------------- stackops
    def cli(self, args, label, extravars=None):
        argv = [tool("stackops")] + args + ["-i", str(self.inventory), "--json"]
        for name, value in dict(BASE_VARS, **(extravars or {})).items():
            argv += ["-e", "%s=%s" % (name, json.dumps(value) if not isinstance(value, str) else value)]
        result = run_timed(argv, env=self.env, check=False, log=self.workdir / ("%s.out" % label))
        summary = last_json(result["output"])
        if summary is None or summary.get("exit_code") != 0 or result["rc"] != 0:
            detail = (summary or {}).get("error") or (summary or {}).get("failed_tasks") or result["output"][-800:]
            raise RuntimeError("stackops %s exited %s: %s" % (" ".join(args), result["rc"], detail))
        result["summary"] = summary
        result["stackops_result"] = ((summary.get("result") or {}).get(PROJECT)) or {}
        tasks = task_results(summary.get("artifacts"))
        result["task_durations"] = [{"task": name, "s": round(duration, 2)} for unused, name, unused2, duration
                                    in tasks if duration is not None]
        return result

    def enable(self):
        result = self.cli(["pitr", "enable", "--yes"], "pitr-enable")
        if not result["stackops_result"].get("receiver_alive"):
            raise RuntimeError("stackops pitr enable ran but the WAL receiver is not alive: %s"
                               % result["stackops_result"])
        return result

    def backup(self, verify):
        since = time.time()
        result = self.cli(["backup", "--physical"] + ([] if verify else ["--no-verify"]), "pitr-backup")
        if not verify:
            self.profiles["backup"].append(self.barman_profile(since))
        taken = result["stackops_result"]
        backup = taken.get("backup") or {}
        if not backup.get("id") or backup.get("status") != "DONE":
            raise RuntimeError("stackops backup --physical returned no complete base backup: %s" % taken)
        if verify and backup.get("verified") is not True:
            raise RuntimeError("stackops backup --physical did not verify its base backup: %s" % taken)
        durations = taken.get("durations") or {}
        result["backup_id"] = backup["id"]
        result["size_bytes"] = backup.get("size_bytes")
        result["module_duration_s"] = durations.get("backup")
        if verify:
            result["verify_s"] = durations.get("verify")
        result["phase_seconds"] = durations
        self.backup_ids.append(backup["id"])
        return result

    def prepare_restore(self):
        """Untimed: drop the data the previous round's swap set aside, let the server write its dirty buffers."""
        self._remove_recovery_volumes()
        self.checkpoint()

    def restore(self, extravars=None):
        if not self.backup_ids:
            raise RuntimeError("no physical base backup to recover from (the physical backup contender made none)")
        vars_ = dict(INCIDENT_VARS) if extravars is None else extravars
        since = time.time()
        result = self.cli(["restore", "--to-latest", "--yes"], "pitr-restore", extravars=vars_)
        if extravars is None:
            profile = self.barman_profile(since)
            profile.update({"task: " + t["task"]: t["s"] for t in result["task_durations"] if t["s"] >= 0.5})
            self.profiles["restore"].append(profile)
        done = result["stackops_result"]
        if not done.get("swapped"):
            raise RuntimeError("stackops restore --to-latest did not swap the service onto the recovered data: %s"
                               % done)
        result["phase_seconds"] = dict(done.get("durations") or {})
        # The module's own time: recovery (barman recover and the files around it), scratch check, swap + start.
        result["module_duration_s"] = round(sum(v for v in result["phase_seconds"].values() if v), 3) or None
        result["plan_backup"] = (done.get("plan") or {}).get("backup", {}).get("id")
        return result

    def prepare_standby(self):
        """Untimed: a warm standby seeded from the current primary (docs/pitr.md "Warm standby"), streaming."""
        self._remove_recovery_volumes()
        self.cli(["pitr", "enable", "--yes"], "pitr-standby-enable", extravars=STANDBY_VARS)
        self.checkpoint()

    def restore_standby(self):
        """`restore --to-latest` that promotes the warm standby and swaps the service onto it. The standby is seeded
        again by prepare_standby, untimed: the restore itself does not re-seed (STANDBY_RESTORE_VARS)."""
        result = self.restore(extravars=dict(INCIDENT_VARS, **STANDBY_RESTORE_VARS))
        done = result["stackops_result"]
        if done.get("method") != "standby":
            raise RuntimeError("stackops restore --to-latest did not promote the warm standby: %s"
                               % done.get("method_reason"))
        return result

    def logical_backup(self):
        """Untimed: the verified logical set of the stack's database that a logical drill restores."""
        self.cli(["backup"], "pitr-logical-backup")

    def drill(self, physical):
        """`stackops drill` (docs/drill.md): the measured RTO is the drill's own (start to app healthy, checks
        passed); the wall time adds the CLI, ansible and the teardown."""
        result = self.cli(["drill"] + (["--physical"] if physical else []),
                          "drill-%s" % ("physical" if physical else "logical"))
        done = result["stackops_result"]
        if done.get("drill") != "passed":
            raise RuntimeError("stackops drill%s did not pass: %s" % (" --physical" if physical else "", done))
        result["module_duration_s"] = done.get("rto_seconds")
        result["phase_seconds"] = done.get("phase_seconds")
        return result

    # -------------------------------------------------------------- profile
    def barman_profile(self, since):
        """Seconds between the markers Barman logs for one run (log/barman.log, lines from ``since`` on)."""
        events = []
        pattern = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \[\d+\] \S+ \w+: (.*)$")
        try:
            lines = (self.pitr_dir / "log" / "barman.log").read_text(errors="replace").splitlines()
        except OSError:
            return {}
        for line in lines:
            match = pattern.match(line)
            if not match:
                continue
            at = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if at >= since - 1:
                events.append((at, match.group(2)))

        def first(text, after=0.0):
            return next((at for at, msg in events if at >= after and text in msg), None)

        def span(name, start, end):
            if start is not None and end is not None and end >= start:
                out[name] = round(end - start, 2)

        out = {}
        # switch-wal --archive: from the CHECKPOINT before the switch to the closed segment reaching the archive.
        switch = first("Force a CHECKPOINT before pg_switch_wal")
        if switch is not None:
            span("barman switch-wal: wait for the closed segment", switch,
                 first("Archiving segment", first("Waiting for the WAL file", switch) or switch))
        span("pg_basebackup (copy, server zstd)", first("Starting backup copy via pg_basebackup"), first("Copy done"))
        done = first("Backup completed")
        if done is not None:
            span("barman backup: wait for the end WAL", done, first("Archiving segment", done))
        start = first("Starting local restore")
        span("barman recover: extract the base backup", first("Copying the base backup", start or 0),
             first("Copying required WAL segments", start or 0))
        span("barman recover: whole command", start, first("Identify dangerous settings", start or 0))
        return out

    def profile_medians(self, kind):
        runs = self.profiles.get(kind) or []
        keys = []
        for run in runs:
            keys += [key for key in run if key not in keys]
        out = {}
        for key in keys:
            values = [run[key] for run in runs if run.get(key) is not None]
            if values:
                name = key if len(values) == len(runs) else "%s (%d of %d rounds)" % (key, len(values), len(runs))
                out[name] = round(median(values), 2)
        return out

    # -------------------------------------------------------------- teardown
    def _remove_recovery_volumes(self):
        listed = subprocess.run(["docker", "volume", "ls", "-q", "--filter", "label=stackops.pitr.server=%s" % PROJECT],
                                capture_output=True, text=True, check=False).stdout.split()
        for name in listed:
            subprocess.run(["docker", "volume", "rm", "-f", name], capture_output=True, check=False)

    def cleanup(self, keep=False):
        barman = tool("barman")
        conf = self.pitr_dir / "barman.conf"
        if barman and conf.exists():
            subprocess.run([barman, "-c", str(conf), "receive-wal", "--stop", PROJECT], capture_output=True,
                           check=False, timeout=120)
        if self.started and not keep:
            subprocess.run(["docker", "rm", "-f", "stackops-pitr-standby-%s" % PROJECT], capture_output=True,
                           check=False)
            self.stack.down()
            self._remove_recovery_volumes()
