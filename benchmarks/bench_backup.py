"""Backup and restore: the seeds' pipeline, the best raw pipelines, pgBackRest and `stackops backup/restore`.

All contenders run in the same process, against the same generated database on one benchmark-owned
PostgreSQL 15 cluster, round-robin (round 1: every contender once, round 2: ..., so machine noise is
spread over all of them), and the median of the rounds is reported. See benchmarks/README.md.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import pgserver  # noqa: E402
from benchlib.pitr import (BASE_VARS as PITR_BASE_VARS, INCIDENT_VARS, PG_PORT as PITR_PG_PORT,  # noqa: E402
                           PROJECT as PITR_PROJECT, SERVER_SETTINGS as PITR_SERVER_SETTINGS, PitrBench)
from benchlib.contenders import (Contender, du, last_json as _last_json, paired, remove, rounds_text,  # noqa: E402
                                 run_rounds, task_results)
from benchlib.measure import run_timed  # noqa: E402
from benchlib.report import (NOT_AVAILABLE, PG_BINDIR, REPO, RESULTS, fmt, grouped_charts, machine_info,  # noqa: E402
                             markdown_section, now_iso, print_report, target, update_marked_block,
                             write_result, README)
from benchlib.settings import (DB_MB, JOBS, KEEP, REPEAT, SLOW_SECONDS, Workdir, ansible_env, log,  # noqa: E402
                               stackops_missing, tool)

DBNAME = "benchdb"
RESTORE_DB = "bench_restore"
STANZA = "bench"
# BENCH_EXTRA=1 adds contenders that explain rather than compete (a single-job streamed restore).
EXTRA = os.environ.get("BENCH_EXTRA", "") not in ("", "0")
BIN = str(PG_BINDIR)
q = shlex.quote


# ------------------------------------------------------------------ pgBackRest

class PgBackRest:
    def __init__(self, cluster, workdir):
        self.cluster = cluster
        self.dir = workdir / "pgbackrest"
        self.conf = self.dir / "pgbackrest.conf"
        self.restore_cluster = None

    def argv(self, *args):
        return pgserver.as_postgres(["pgbackrest", "--config=%s" % self.conf, "--stanza=%s" % STANZA] + list(args))

    def setup(self):
        for sub in ("", "repo", "log", "lock", "spool"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
            pgserver.chown_postgres(self.dir / sub)
        self.conf.write_text(
            "[global]\nrepo1-path=%s\nrepo1-retention-full=1\nlog-path=%s\nlock-path=%s\nspool-path=%s\n"
            "log-level-console=warn\nlog-level-file=info\ncompress-type=zst\ncompress-level=3\nprocess-max=%d\n"
            "start-fast=y\narchive-check=y\n\n[%s]\npg1-path=%s\npg1-port=%d\npg1-socket-path=%s\npg1-user=postgres\n" % (
                self.dir / "repo", self.dir / "log", self.dir / "lock", self.dir / "spool", JOBS, STANZA,
                self.cluster.datadir, self.cluster.port, self.cluster.sockdir))
        pgserver.chown_postgres(self.conf)
        archive = "pgbackrest --config=%s --stanza=%s archive-push %%p" % (self.conf, STANZA)
        self.cluster.sql("ALTER SYSTEM SET archive_command = %s" % _literal(archive))
        self.cluster.sql("SELECT pg_reload_conf()")
        for step in (["stanza-create"], ["check"]):
            done = subprocess.run(self.argv(*step), capture_output=True, text=True, timeout=300, check=False)
            if done.returncode != 0:
                raise RuntimeError("pgbackrest %s failed: %s" % (step[0], (done.stderr or done.stdout).strip()[-800:]))

    def backup(self):
        result = run_timed(self.argv("--type=full", "backup"), log=self.dir / "backup.out")
        info = json.loads(subprocess.run(self.argv("--output=json", "info"), capture_output=True, text=True,
                                         check=True).stdout)
        backups = info[0]["backup"]
        latest = backups[-1]
        result["size_bytes"] = latest["info"]["repository"]["delta"]
        result["backup_label"] = latest["label"]
        return result

    def prepare_restore(self):
        if self.restore_cluster:
            self.restore_cluster.destroy()
        self.restore_cluster = pgserver.BenchCluster(self.dir.parent, name="pgbr-restore")
        self.restore_cluster.datadir.mkdir(mode=0o700)
        pgserver.chown_postgres(self.restore_cluster.datadir)

    def restore(self):
        """pgbackrest restore into an empty data directory, start it, wait until it is promoted and serves."""
        dest = self.restore_cluster
        restore_command = "pgbackrest --config=%s --stanza=%s --pg1-path=%s archive-get %%f \"%%p\"" % (
            self.conf, STANZA, dest.datadir)
        script = " && ".join([
            " ".join(q(a) for a in self.argv("--pg1-path=%s" % dest.datadir, "--type=immediate",
                                             "--target-action=promote",
                                             "--recovery-option=restore_command=%s" % restore_command, "restore")),
            " ".join(q(a) for a in dest.start_argv(extra=["-c archive_mode=off"])),
            # Ready means promoted: recovery done and the server accepts writes.
            "for i in $(seq 1 1200); do [ \"$(%s/psql -h 127.0.0.1 -p %d -U postgres -d postgres -Atc 'select pg_is_in_recovery()'"
            " 2>/dev/null)\" = f ] && exit 0; sleep 0.1; done; exit 1" % (BIN, dest.port),
        ])
        result = run_timed(script, shell=True, env={"PGPASSWORD": self.cluster.password}, log=self.dir / "restore.out")
        counts = row_counts(lambda sql: subprocess.run(
            [BIN + "/psql", "-h", "127.0.0.1", "-p", str(dest.port), "-U", "postgres", "-d", DBNAME,
             "-Atc", sql], capture_output=True, text=True, env=dict(os.environ, PGPASSWORD=self.cluster.password),
            check=True).stdout)
        result["row_counts"] = counts
        dest.stop("immediate")
        return result

    def cleanup(self):
        if self.restore_cluster:
            self.restore_cluster.destroy(keep_files=KEEP)


def _literal(text):
    return "'" + text.replace("'", "''") + "'"


TABLES = ("customers", "orders", "attachments", "events")


def row_counts(query):
    sql = " UNION ALL ".join("SELECT '%s', count(*) FROM %s" % (t, t) for t in TABLES)
    out = query(sql)
    return {line.split("|")[0]: int(line.split("|")[1]) for line in out.strip().splitlines()}


# ------------------------------------------------------------------ stackops

class Stackops:
    """`stackops backup` / `stackops restore` as an operator runs them, against the benchmark cluster.

    The database here is a host cluster, not a compose service, so the inventory sets the roles'
    tools_location to host (pg_dump/pg_restore of this machine, as for a DB outside compose) and has no
    writer services to stop or URLs to probe; everything else is the roles' defaults.
    """

    def __init__(self, cluster, workdir):
        self.cluster = cluster
        self.workdir = workdir
        self.inventory = workdir / "inventory-backup"
        self.backup_dir = workdir / "stackops-backups"
        self.state = workdir / "stackops-state"
        self.env = ansible_env(self.state)
        # The newest set of each kind of backup run ("verified", "default", "uncompressed"), the ones restored.
        self.sets = {}

    def write_inventory(self):
        (self.inventory / "group_vars").mkdir(parents=True, exist_ok=True)
        (self.inventory / "hosts.yml").write_text(
            "all:\n  children:\n    stacks:\n      hosts:\n        bench-db:\n"
            "          ansible_connection: local\n"
            "          ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n")
        group_vars = {
            "stackops_compose_project_dir": str(REPO / "examples" / "stack"),
            "stackops_compose_project_name": "stackops-bench-unused",
            "stackops_compose_env_files": [],
            "stackops_db_service": "postgres",
            "stackops_db_host": self.cluster.host,
            "stackops_db_port": self.cluster.port,
            "stackops_db_name": DBNAME,
            "stackops_db_user": self.cluster.user,
            "stackops_db_password_file": str(self.cluster.password_file),
            "stackops_backup_dir": str(self.backup_dir),
            "stackops_health_urls": [],
            "stackops_backup_tools_location": "host",
            "stackops_restore_tools_location": "host",
            "stackops_restore_stop_services": [],
        }
        extra = os.environ.get("BENCH_STACKOPS_VARS")  # JSON mapping, e.g. '{"stackops_backup_jobs": 2}'
        if extra:
            group_vars.update(json.loads(extra))
        self.group_vars = group_vars
        (self.inventory / "group_vars" / "stacks.yml").write_text(json.dumps(group_vars, indent=2))

    def _cli(self, args, label):
        argv = [tool("stackops")] + args + ["-i", str(self.inventory), "--json"]
        result = run_timed(argv, env=self.env, check=False, log=self.workdir / ("%s.out" % label))
        summary = _last_json(result["output"])
        result["summary"] = summary
        if summary is None or summary.get("exit_code") != 0 or result["rc"] != 0:
            detail = (summary or {}).get("error") or (summary or {}).get("failed_tasks") or result["output"][-600:]
            raise RuntimeError("stackops %s exited %s: %s" % (" ".join(args), result["rc"], detail))
        result["tasks"] = task_results((summary or {}).get("artifacts"))
        # Where the time goes: every task of the run with its duration (the JSON keeps the last run's).
        result["task_durations"] = [{"task": name, "s": round(duration, 2)} for unused, name, unused2, duration in result["tasks"]
                                    if duration is not None]
        return result

    @property
    def verified_backup_id(self):
        return self.sets.get("verified")

    def _prune_old_sets(self, keep):
        for entry in self.backup_dir.iterdir():
            if entry.is_dir() and not entry.name.startswith(".") and entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)

    def backup(self, verify, extravars=None, slot=None):
        args = ["backup"] + ([] if verify else ["--no-verify"])
        for name, value in (extravars or {}).items():
            args += ["-e", "%s=%s" % (name, json.dumps(value))]
        result = self._cli(args, "stackops-backup")
        taken = _module_result(result["tasks"], "stackops.runbooks.pg_backup")
        if not taken or not taken.get("backup_id"):
            raise RuntimeError("stackops backup succeeded but no pg_backup task result was found in its artifacts")
        backup_id = taken["backup_id"]
        result["backup_id"] = backup_id
        result["size_bytes"] = taken.get("size_bytes") or du(self.backup_dir / backup_id)
        result["module_duration_s"] = taken.get("duration_seconds")
        # Where the module's time went (dump, trial restore, overlap, checks, publish), per round.
        result["phase_seconds"] = taken.get("phase_seconds")
        if verify:
            # pg_backup proves the set itself, its trial restore reading the dump while it is written.
            verified = taken.get("verification") or {}
            if not taken.get("verified"):
                raise RuntimeError("stackops backup did not report a verified backup: %s" % verified)
            result["verify_s"] = verified.get("duration_seconds")
        self.sets[slot or ("verified" if verify else "default")] = backup_id
        self._prune_old_sets(keep=set(self.sets.values()))
        return result

    def restore(self, slot=None):
        """Restore a backup into a new database: by default the verified one (what operators restore)."""
        backup_id = self.sets.get(slot) if slot else (self.sets.get("verified") or self.sets.get("default"))
        if not backup_id:
            raise RuntimeError("no stackops backup to restore (the backup contender did not produce one)")
        args = ["restore", "--backup-id", backup_id, "--target-db", RESTORE_DB]
        if backup_id != self.verified_backup_id:
            args += ["-e", "stackops_restore_require_verified=false"]
        result = self._cli(args, "stackops-restore")
        restored = _module_result(result["tasks"], "stackops.runbooks.pg_backup_restore")
        if restored:
            result["module_duration_s"] = restored.get("duration_seconds")
            result["phase_seconds"] = restored.get("phase_seconds")
        return result


def _module_result(tasks, action):
    """The last real (not check-mode) result of a module in the run."""
    short = action.rsplit(".", 1)[-1]
    for task_action, unused, res, unused2 in reversed(tasks):
        if task_action in (action, short) and not res.get("skipped") and "duration_seconds" in res:
            return res
    return None


# ------------------------------------------------------------------ main

def main():
    work = Workdir("backup")
    out = work.path / "out"
    out.mkdir()
    logs = work.path / "logs"
    logs.mkdir()
    doc = {"benchmark": "backup_restore", "started": now_iso(), "machine": machine_info(work.path),
           "settings": {"repeat": REPEAT, "slow_seconds": SLOW_SECONDS, "db_mb_target": DB_MB, "jobs": JOBS,
                        "server_settings": pgserver.SERVER_SETTINGS}}
    cluster = pgserver.BenchCluster(work.path)
    pgbr = PgBackRest(cluster, work.path)
    pitr = PitrBench(work.path)
    try:
        log("initialising a PostgreSQL 15 cluster on port %d" % cluster.port)
        cluster.init()
        _allow_local_peer(cluster)
        cluster.start()
        log("generating a ~%d MB database (BENCH_DB_MB)" % DB_MB)
        data = pgserver.generate(cluster, DBNAME, DB_MB, workers=JOBS, log=log)
        source_counts = row_counts(lambda sql: "\n".join(
            "%s|%s" % row for row in cluster.sql(sql, dbname=DBNAME)))
        data["row_counts"] = source_counts
        db_bytes = data["size_bytes"]
        doc["data"] = data
        log("database %s: %.0f MB, rows %s (generated in %.0f s)" % (
            DBNAME, db_bytes / 2 ** 20, source_counts, data["generate_s"]))
        env = cluster.env
        pitr_missing, pitr_counts = setup_pitr(pitr, doc)

        # ---------------------------------------------------------- contenders
        seed_file, zstd_file, dir_dump, z0_file = (out / "seed.sql.gz", out / "zstd.dump.zst", out / "dir",
                                                   out / "z0.dump")
        backups = [
            Contender("seed_backup", "seeds: pg_dump | gzip", "seed",
                      "%s/pg_dump -d %s | gzip > %s && sync %s" % (BIN, DBNAME, seed_file, seed_file),
                      artifact=seed_file, prepare=lambda: remove(seed_file)),
            Contender("zstd_backup", "pg_dump -Fc -Z0 | zstd -T0 -3", "raw",
                      "%s/pg_dump -Fc -Z0 -d %s | zstd -q -T0 -3 > %s && sync %s" % (BIN, DBNAME, zstd_file, zstd_file),
                      artifact=zstd_file, prepare=lambda: remove(zstd_file)),
            Contender("dir_backup", "pg_dump -Fd -j %d -Z1 (gzip; PG15 has no zstd)" % JOBS, "raw",
                      "%s/pg_dump -Fd -j %d -Z 1 -d %s -f %s" % (BIN, JOBS, DBNAME, dir_dump),
                      artifact=dir_dump, prepare=lambda: remove(dir_dump)),
            Contender("z0_backup", "pg_dump -Fc -Z0 -f file (uncompressed)", "raw",
                      "%s/pg_dump -Fc -Z0 -d %s -f %s" % (BIN, DBNAME, z0_file),
                      artifact=z0_file, prepare=lambda: remove(z0_file)),
            Contender("pgbackrest_backup", "pgBackRest full (physical, zst, process-max %d)" % JOBS, "physical",
                      run=pgbr.backup, note="physical copy of the whole cluster, reference only"),
        ]
        # Our physical backup: the whole cluster of the bench-pitr compose stack, like pgBackRest's of the host one.
        so_physical = Contender("stackops_backup_physical", "stackops backup --physical --no-verify (Barman, server zstd)",
                                "stackops", run=lambda: pitr.backup(verify=False), prepare=pitr.checkpoint,
                                note="compose stack %s; whole cluster" % PITR_PROJECT)
        so_physical_verify = Contender("stackops_backup_physical_verified", "stackops backup --physical (with verification)",
                                       "stackops", run=lambda: pitr.backup(verify=True), prepare=pitr.checkpoint,
                                       note="run once; the module reports backup and verification seconds")
        for contender in (so_physical, so_physical_verify):
            if pitr_missing:
                contender.unavailable(pitr_missing)
        backups.append(so_physical)
        stackops = Stackops(cluster, work.path)
        missing = stackops_missing("backup.yml", "restore.yml")
        so_backup = Contender("stackops_backup", "stackops backup --no-verify", "stackops",
                              run=lambda: stackops.backup(verify=False))
        so_backup_verify = Contender("stackops_backup_verified", "stackops backup (with verification)", "stackops",
                                     run=lambda: stackops.backup(verify=True),
                                     note="the trial restore reads the dump while it is written")
        if missing:
            so_backup.unavailable(missing)
            so_backup_verify.unavailable(missing)
        else:
            stackops.write_inventory()
        # Like for like with the uncompressed raw dump: the same procedure with compression none.
        so_backup_plain = Contender("stackops_backup_uncompressed", "stackops backup --no-verify, compression none",
                                    "stackops", run=lambda: stackops.backup(verify=False, slot="uncompressed", extravars={
                                        "stackops_backup_compression": "none"}))
        if missing:
            so_backup_plain.unavailable(missing)
        backups += [so_backup, so_backup_verify, so_backup_plain]
        if EXTRA:
            # What the opt-in content checksums (a second, hashing read of every table) cost.
            so_backup_content = Contender("stackops_backup_content", "stackops backup --no-verify, content checksums on",
                                          "stackops", run=lambda: stackops.backup(verify=False, extravars={
                                              "stackops_backup_content_checksums": True}))
            if missing:
                so_backup_content.unavailable(missing)
            backups.append(so_backup_content)
        try:
            pgbr.setup()
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            log("pgBackRest not available: %s" % exc)
            next(c for c in backups if c.key == "pgbackrest_backup").unavailable("setup failed: %s" % str(exc)[:300])

        log("backup phase: %d contenders x %d rounds" % (len(backups), REPEAT))
        settle = lambda: cluster.quiesce(log=log)  # noqa: E731
        run_rounds(backups, env, logs, phase="backup", before_each=settle)
        # One verified run of the physical backup: what the default `stackops backup --physical` costs.
        run_rounds([so_physical_verify], env, logs, phase="backup (verified)", repeat=1, before_each=settle)
        backups += [so_physical_verify]

        def fresh_db():
            cluster.drop_database(RESTORE_DB)

        def create_and(cmd):
            return "%s/createdb %s && %s" % (BIN, RESTORE_DB, cmd)

        tmp_dump = out / "zstd-decompressed.dump"

        def prep_zstd_file():
            fresh_db()
            remove(tmp_dump)

        restores = [
            Contender("seed_restore", "seeds: gunzip -c | psql", "seed",
                      create_and("gunzip -c %s | %s/psql -q -X -v ON_ERROR_STOP=1 -d %s > /dev/null" % (
                          seed_file, BIN, RESTORE_DB)), prepare=fresh_db),
            Contender("zstd_file_restore", "zstd -d to file, pg_restore -j %d" % JOBS, "raw",
                      create_and("zstd -q -d -T0 %s -o %s && %s/pg_restore -j %d -d %s %s" % (
                          zstd_file, tmp_dump, BIN, JOBS, RESTORE_DB, tmp_dump)), prepare=prep_zstd_file),
            Contender("dir_restore", "pg_restore -j %d (directory, -Z1)" % JOBS, "raw",
                      create_and("%s/pg_restore -j %d -d %s %s" % (BIN, JOBS, RESTORE_DB, dir_dump)),
                      prepare=fresh_db),
            Contender("z0_restore", "pg_restore -j %d (custom file, uncompressed)" % JOBS, "raw",
                      create_and("%s/pg_restore -j %d -d %s %s" % (BIN, JOBS, RESTORE_DB, z0_file)),
                      prepare=fresh_db),
            Contender("pgbackrest_restore", "pgBackRest restore + start + promote (physical)", "physical",
                      run=pgbr.restore, prepare=pgbr.prepare_restore, note="whole cluster, reference only"),
            Contender("stackops_restore", "stackops restore --target-db (new database)", "stackops",
                      run=stackops.restore, prepare=fresh_db),
            Contender("stackops_restore_uncompressed", "stackops restore of the uncompressed backup", "stackops",
                      run=lambda: stackops.restore(slot="uncompressed"), prepare=fresh_db),
            Contender("stackops_pitr_restore", "stackops restore --to-latest --yes (PITR: recover, check, swap, start)",
                      "stackops", run=pitr.restore, prepare=pitr.prepare_restore,
                      note="compose stack %s; %s" % (PITR_PROJECT, ", ".join(
                          "%s=%s" % (k, json.dumps(v)) for k, v in INCIDENT_VARS.items()))),
            # Issue 21 item 2: RTO that does not grow with the database. The standby is seeded untimed before each
            # round; module_duration_s is the module's plan + catch-up + promote + swap + health.
            Contender("stackops_pitr_restore_standby",
                      "stackops restore --to-latest --yes with the warm standby (promote, swap, start)",
                      "stackops", run=pitr.restore_standby, prepare=pitr.prepare_standby,
                      note=("compose stack %s; stackops_pitr_standby=true, re-seeded untimed before each round"
                            % PITR_PROJECT)),
        ]
        # Once, after the rounds: the same recovery with the role's defaults, i.e. followed by a verified base
        # backup of the new timeline (what the next recovery starts from).
        so_pitr_defaults = Contender("stackops_pitr_restore_defaults",
                                     "stackops restore --to-latest --yes, defaults (+ verified base backup after)",
                                     "stackops", run=lambda: pitr.restore(extravars={}), prepare=pitr.prepare_restore,
                                     note="run once; stackops_pitr_backup_after_restore and _verify_after_restore true")
        if EXTRA:
            restores.insert(1, Contender("zstd_stream_restore", "zstd -dc | pg_restore (1 job, streamed)", "raw",
                                         create_and("zstd -q -dc %s | %s/pg_restore -d %s" % (zstd_file, BIN, RESTORE_DB)),
                                         prepare=fresh_db))
        # A restore needs its backup contender's output.
        sources = {"seed_restore": backups[0], "zstd_stream_restore": backups[1], "zstd_file_restore": backups[1],
                   "dir_restore": backups[2], "z0_restore": backups[3], "pgbackrest_restore": backups[4],
                   "stackops_restore": so_backup, "stackops_restore_uncompressed": so_backup_plain}
        for contender in restores + [so_pitr_defaults]:
            if contender.key.startswith("stackops_pitr"):
                if not so_physical.runs and not so_physical_verify.runs:
                    contender.unavailable("no physical base backup: %s" % (
                        so_physical_verify.reason or so_physical.reason or NOT_AVAILABLE))
                continue
            source = sources[contender.key]
            if not source.available or not source.runs:
                contender.unavailable("its backup (%s) is %s" % (source.label, source.reason or NOT_AVAILABLE))

        def check_restore(contender, result):
            if contender.key == "pgbackrest_restore":
                counts = result.get("row_counts")
            elif contender.key.startswith("stackops_pitr"):
                counts = pitr.row_counts(TABLES)
                if counts != pitr_counts:
                    return "row counts %s differ from the stack's source %s" % (counts, pitr_counts)
                return None
            else:
                counts = row_counts(lambda sql: "\n".join(
                    "%s|%s" % row for row in cluster.sql(sql, dbname=RESTORE_DB)))
            if counts != source_counts:
                return "row counts %s differ from the source %s" % (counts, source_counts)
            return None

        # The restores' WAL is not archived: pgBackRest restores from the backup phase's archive, and compressing
        # about a GB of WAL per restore in the background would load every contender with the archiver's work.
        settle()
        cluster.sql("ALTER SYSTEM SET archive_command = '/bin/true'")
        cluster.sql("SELECT pg_reload_conf()")
        doc["settings"]["restore_phase_archive_command"] = "/bin/true"
        log("restore phase: %d contenders x %d rounds (WAL archiving off)" % (len(restores), REPEAT))
        run_rounds(restores, env, logs, after_each=check_restore, phase="restore", before_each=settle)
        run_rounds([so_pitr_defaults], env, logs, after_each=check_restore, phase="restore (PITR defaults)", repeat=1,
                   before_each=settle)
        restores.append(so_pitr_defaults)
        # Once each: restore drills on the same stack (docs/drill.md), whose RTO is set beside the restore alone.
        drills = [Contender("stackops_drill_logical", "stackops drill (logical: restore, start the app, checks)",
                            "stackops", run=lambda: pitr.drill(physical=False), prepare=pitr.logical_backup,
                            note="compose stack %s; module_duration_s is the measured RTO" % PITR_PROJECT),
                  Contender("stackops_drill_physical", "stackops drill --physical (recover, start the app, checks)",
                            "stackops", run=lambda: pitr.drill(physical=True), prepare=pitr.checkpoint,
                            note="compose stack %s; module_duration_s is the measured RTO" % PITR_PROJECT)]
        for contender in drills:
            if pitr_missing or (contender.key.endswith("physical") and not so_physical.runs
                                and not so_physical_verify.runs):
                contender.unavailable(pitr_missing or "no physical base backup")
        run_rounds(drills, env, logs, phase="restore drill", repeat=1, before_each=settle)
        restores += drills
        cluster.drop_database(RESTORE_DB)
        doc["pitr_profile"] = {kind: pitr.profile_medians(kind) for kind in ("backup", "restore")}

        doc["backup"] = [c.summary(db_bytes) for c in backups]
        doc["restore"] = [c.summary(db_bytes) for c in restores]
        doc["finished"] = now_iso()
        doc["machine"]["loadavg_at_end"] = list(os.getloadavg())
        report(doc, db_bytes)
    finally:
        pgbr.cleanup()
        pitr.cleanup(keep=KEEP)
        cluster.destroy(keep_files=KEEP)
        work.cleanup()


def setup_pitr(pitr, doc):
    """The bench-pitr stack, loaded like the host cluster, with PITR enabled. Returns (why not, row counts)."""
    missing = stackops_missing("backup.yml", "restore.yml", "pitr.yml")
    if missing:
        return missing, None
    try:
        log("PITR contenders: compose project %s on port %d, its postgres service only" % (PITR_PROJECT, PITR_PG_PORT))
        pitr.start()
        log("generating the same ~%d MB database in the stack's PostgreSQL" % DB_MB)
        data = pitr.generate(DB_MB, JOBS)
        counts = pitr.row_counts(TABLES)
        data["row_counts"] = counts
        data["cluster_bytes"] = pitr.db.sql("SELECT sum(pg_database_size(oid))::bigint FROM pg_database")[0][0]
        doc["pitr_data"] = data
        doc["settings"]["pitr"] = {"project": PITR_PROJECT, "port": PITR_PG_PORT,
                                   "server_settings": PITR_SERVER_SETTINGS,
                                   "stackops_vars_all_runs": PITR_BASE_VARS,
                                   "stackops_vars_timed_restore": INCIDENT_VARS}
        log("stack database: %.0f MB, rows %s (generated in %.0f s); stackops pitr enable --yes" % (
            data["size_bytes"] / 2 ** 20, counts, data["generate_s"]))
        doc["pitr_enable_s"] = round(pitr.enable()["wall_s"], 2)
        return None, counts
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        log("PITR contenders not available: %s" % exc)
        return "setup failed: %s" % str(exc).strip()[:300], None
    except Exception as exc:  # noqa: BLE001 - psycopg errors from the loader: the other contenders still run
        log("PITR contenders not available: %s" % exc)
        return "setup failed: %s: %s" % (type(exc).__name__, str(exc).strip()[:300]), None


def _allow_local_peer(cluster):
    """pgBackRest runs as the postgres OS user and connects over the Unix socket: peer auth for it."""
    hba = cluster.datadir / "pg_hba.conf"
    hba.write_text("local all postgres peer\n" + hba.read_text())


# ------------------------------------------------------------------ report

def _by_key(rows):
    return {row["key"]: row for row in rows}


def report(doc, db_bytes):
    backups, restores = _by_key(doc["backup"]), _by_key(doc["restore"])
    logical_backup = [r for r in doc["backup"] if r["kind"] == "raw" and r["median_wall_s"]]
    # "Best raw pipeline": the fastest compressed raw logical backup (the uncompressed file is the floor, not a backup
    # anyone keeps; it is in the table as the cost of pg_dump alone).
    compressed = [r for r in logical_backup if r["key"] != "z0_backup"]
    best_backup = min(compressed, key=lambda r: r["median_wall_s"]) if compressed else None
    jobs_restores = [r for r in doc["restore"] if r["kind"] == "raw" and "-j" in r["label"] and r["median_wall_s"]]
    best_restore = min(jobs_restores, key=lambda r: r["median_wall_s"]) if jobs_restores else None
    seed_b, seed_r = backups["seed_backup"], restores["seed_restore"]

    def rows(items, seed, best):
        out = []
        for item in items:
            wall = item["median_wall_s"]
            out.append({
                "contender": item["label"], "kind": item["kind"],
                "n": str(item["n"]) if item["available"] else "-",
                "wall": fmt(wall, "%.1f", " s") if wall is not None else NOT_AVAILABLE,
                "mbs": fmt(item["throughput_mb_s"], "%.0f"),
                "size": fmt(item["size_bytes"] / 2 ** 20 if item["size_bytes"] else None, "%.0f", " MB"),
                "mem": fmt(item["peak_pss_mib"], "%.0f", " MiB"),
                "vs_seed": fmt(seed["median_wall_s"] / wall if wall and seed["median_wall_s"] else None, "%.2f", "x"),
                "vs_best": fmt(wall / best["median_wall_s"] if wall and best else None, "%.2f", "x"),
                "why": "" if item["available"] else (item["reason"] or NOT_AVAILABLE),
            })
        return out

    columns = [("contender", "contender"), ("kind", "kind"), ("n", "n"), ("wall", "median wall"),
               ("mbs", "MB/s"), ("size", "size"), ("mem", "peak mem"), ("vs_seed", "speedup vs seed"),
               ("vs_best", "time / best raw"), ("why", "not available because")]
    if all(r["available"] for r in doc["backup"] + doc["restore"]):
        columns = columns[:-1]
    tables = [
        ("Backup of %s (%.0f MB) — best raw = %s" % (DBNAME, db_bytes / 2 ** 20, best_backup["label"] if best_backup else "-"),
         columns, rows(doc["backup"], seed_b, best_backup)),
        ("Restore into a new database — best raw = %s" % (best_restore["label"] if best_restore else "-"),
         columns, rows(doc["restore"], seed_r, best_restore)),
    ]
    ours_b, ours_r = backups.get("stackops_backup"), restores.get("stackops_restore")
    targets = []
    pair = paired(ours_b, seed_b) if ours_b else None
    name = "stackops backup >= 3x faster than the seeds' pg_dump | gzip"
    if pair:
        speedup = pair[1] / pair[0]
        targets.append(target(name, speedup >= 3, "%.2fx (%.1f s vs %.1f s, %s)" % (
            speedup, pair[0], pair[1], rounds_text(pair[2], ours_b, seed_b))))
    else:
        targets.append(target(name, None, "stackops backup %s" % ((ours_b or {}).get("reason") or NOT_AVAILABLE)))
    logical, logical_notes = logical_targets(doc, backups, restores)
    targets += logical
    notes = list(logical_notes)
    # The restore target compares with the fastest raw pg_restore -j; name both file-based raws explicitly, since
    # only one of them restores the same artifact as stackops (a zstd-compressed custom dump).
    ratios = {}
    for key, what in (("zstd_file_restore", "the same zstd artifact (zstd -d to a file, then pg_restore -j)"),
                      ("z0_restore", "an uncompressed custom file (pg_dump -Fc -Z0 -f, nothing to decompress)")):
        other = restores.get(key)
        pair = paired(ours_r, other) if ours_r and other else None
        if pair:
            ratios[key] = round(pair[0] / pair[1], 3)
            notes.append("stackops restore vs pg_restore -j from %s: %.2fx (%.1f s vs %.1f s, %s)" % (
                what, pair[0] / pair[1], pair[0], pair[1], rounds_text(pair[2], ours_r, other)))
    plain_r, z0_r = restores.get("stackops_restore_uncompressed"), restores.get("z0_restore")
    pair = paired(plain_r, z0_r) if plain_r and z0_r else None
    if pair:
        ratios["uncompressed_vs_z0_restore"] = round(pair[0] / pair[1], 3)
        notes.append("like for like, both from an uncompressed custom dump: stackops restore %.2fx of pg_restore -j %d "
                     "(%.1f s vs %.1f s, %s)" % (pair[0] / pair[1], JOBS, pair[0], pair[1],
                                                 rounds_text(pair[2], plain_r, z0_r)))
    plain_b, z0_b = backups.get("stackops_backup_uncompressed"), backups.get("z0_backup")
    pair = paired(plain_b, z0_b) if plain_b and z0_b else None
    if pair:
        notes.append("like for like, both uncompressed: stackops backup %.2fx of pg_dump -Fc -Z0 -f (%.1f s vs %.1f s, "
                     "%s)" % (pair[0] / pair[1], pair[0], pair[1], rounds_text(pair[2], plain_b, z0_b)))
    doc["restore_ratios"] = ratios
    for item, label in ((ours_b, "backup --no-verify"), (ours_r, "restore")):
        if item and item.get("median_wall_s") and item.get("module_duration_s"):
            notes.append("stackops %s: %.1f s in the module itself (median), %.1f s for the CLI, ansible and the "
                         "other tasks" % (label, item["module_duration_s"], item["median_wall_s"] - item["module_duration_s"]))
    pitr_table, pitr_targets, pitr_notes = pitr_report(doc, backups, restores)
    if pitr_table:
        tables.append(pitr_table)
    targets += pitr_targets
    notes += pitr_notes
    notes.append("every contender starts on a settled cluster (no WAL waiting for the archiver, then a CHECKPOINT); the "
                 "restore phase runs with archive_command=/bin/true, so no restore pays for archiving another's WAL")
    machine = doc.get("machine", {})
    notes.append("load average %s at start, %s at end on %s CPUs: the machine is shared with other work, so absolute "
                 "times are noisy; compare ratios within this run" % (
                     "/".join("%.1f" % x for x in machine.get("loadavg_at_start") or []) or "?",
                     "/".join("%.1f" % x for x in machine.get("loadavg_at_end") or []) or "?", machine.get("nproc")))
    notes.append("sizes: backup output on disk; pgBackRest: repository delta of the full backup (whole cluster). "
                 "Peak mem: peak PSS sum of the client process tree (server backends excluded).")
    doc["targets"] = targets
    doc["best_raw_backup"] = best_backup["key"] if best_backup else None
    doc["best_raw_restore"] = best_restore["key"] if best_restore else None
    title = "Backup / restore benchmark — %.0f MB database, median of up to %d rounds" % (db_bytes / 2 ** 20, REPEAT)
    print_report(title, tables, targets, notes)

    chart = RESULTS / "backup_restore.png"
    grouped_charts(chart, title, [
        ("backup: median wall time (s), lower is better",
         [(r["label"], r["median_wall_s"], r["kind"]) for r in doc["backup"]], "seconds"),
        ("restore: median wall time (s), lower is better",
         [(r["label"], r["median_wall_s"], r["kind"]) for r in doc["restore"]], "seconds"),
    ])
    doc["chart"] = str(chart.relative_to(RESULTS.parent.parent)) if chart.is_relative_to(RESULTS.parent.parent) else str(chart)
    path = write_result("backup_restore", doc)
    section = markdown_section(title, tables, targets, notes, when=doc["finished"])
    update_marked_block(README, "backup_restore", section)
    log("wrote %s and %s" % (path, chart))


# Issue 21, targets 3 and 4: (name, ours, anchor, limit). Judged at 3 GB (BENCH_DB_MB=3072), where fixed costs
# amortise; the verdict is printed at every size, with the size it was measured at.
LOGICAL_TARGETS = (
    ("stackops backup (verified) <= 2x pg_dump -Fc -Z0 | zstd -T0 -3", ("backup", "stackops_backup_verified"),
     ("backup", "zstd_backup"), 2.0),
    ("stackops backup --no-verify <= 1.15x pg_dump -Fc -Z0 | zstd -T0 -3 (judged at 3 GB)", ("backup", "stackops_backup"),
     ("backup", "zstd_backup"), 1.15),
    ("stackops restore --target-db <= 1.15x pg_restore -j %d from an uncompressed custom file (judged at 3 GB)" % JOBS,
     ("restore", "stackops_restore"), ("restore", "z0_restore"), 1.15),
)
# What the phases of the verified backup are called in pg_backup's phase_seconds, in the order they happen.
VERIFIED_PHASES = (("dump", "dump"), ("trial", "trial restore"), ("trial-toc", "its table of contents"),
                   ("trial-pre-data", "its pre-data"),
                   ("trial-data", "its data"), ("trial-post-data", "its post-data"), ("overlap", "overlap"),
                   ("checksums", "checksums read back"), ("trial-compare", "row counts compared"),
                   ("publish", "publish"), ("total", "module total"))


def logical_targets(doc, backups, restores):
    """The logical backup and restore targets (contender, its time, the anchor in the same run, ratio, verdict) and a
    note with the phases of the verified backup."""
    size = "%.0f MB" % ((doc.get("data") or {}).get("size_bytes", 0) / 2 ** 20)
    targets, notes = [], []
    for name, (ours_phase, ours_key), (ref_phase, ref_key), limit in LOGICAL_TARGETS:
        ours = (backups if ours_phase == "backup" else restores).get(ours_key)
        ref = (backups if ref_phase == "backup" else restores).get(ref_key)
        pair = paired(ours, ref) if ours and ref else None
        if pair:
            ratio = pair[0] / pair[1]
            targets.append(target(name, ratio <= limit, "%s %.1f s vs %s %.1f s = %.2fx (limit %.2fx, %s, at %s)" % (
                ours["label"], pair[0], ref["label"], pair[1], ratio, limit, rounds_text(pair[2], ours, ref), size)))
        else:
            why = (ours or {}).get("reason") or (ref or {}).get("reason") or NOT_AVAILABLE
            targets.append(target(name, None, why))
    verified = backups.get("stackops_backup_verified")
    phases = (verified or {}).get("phase_seconds_median") or {}
    if phases:
        notes.append("where the verified backup's time goes (pg_backup's phase_seconds, median): %s; the trial restore "
                     "reads the dump while it is written, so it costs about the slower of the two plus its index builds"
                     % "; ".join("%s %.1f s" % (label, phases[key]) for key, label in VERIFIED_PHASES if key in phases))
        doc["verified_backup_phases"] = phases
    plain = backups.get("stackops_backup")
    pair = paired(verified, plain) if verified and plain else None
    if pair:
        doc["verification_cost_s"] = round(pair[0] - pair[1], 3)
        notes.append("verification (the trial restore of the new backup) costs %.1f s on top of --no-verify (%.1f s vs "
                     "%.1f s, %s); `stackops backup` verifies by default" % (
                         pair[0] - pair[1], pair[0], pair[1], rounds_text(pair[2], verified, plain)))
    if plain and (plain.get("phase_seconds_median") or {}):
        notes.append("stackops backup --no-verify phases (median): %s" % "; ".join(
            "%s %.1f s" % item for item in plain["phase_seconds_median"].items()))
    return targets, notes


PITR_ROWS = (("backup", "pgbackrest_backup", "host cluster"), ("backup", "stackops_backup_physical", "compose stack"),
             ("backup", "stackops_backup_physical_verified", "compose stack"),
             ("restore", "pgbackrest_restore", "host cluster"), ("restore", "stackops_pitr_restore", "compose stack"),
             ("restore", "stackops_pitr_restore_defaults", "compose stack"),
             ("restore", "stackops_restore", "host cluster"),
             ("restore", "stackops_drill_logical", "compose stack"), ("restore", "stackops_drill_physical", "compose stack"))


def drill_summary(restores):
    """'logical RTO 85.0 s (the restore alone 78.2 s), physical ...' from the drill rows; '' without them."""
    parts = []
    for key, kind, alone in (("stackops_drill_logical", "logical", "stackops_restore"),
                             ("stackops_drill_physical", "physical", "stackops_pitr_restore")):
        item, reference = restores.get(key), restores.get(alone)
        if item and item.get("module_duration_s"):
            parts.append("%s RTO %.1f s (the restore alone: %s)" % (kind, item["module_duration_s"], fmt(
                (reference or {}).get("median_wall_s"), "%.1f", " s")))
    return "; ".join(parts)


def pitr_report(doc, backups, restores):
    """Physical backup and PITR restore beside pgBackRest (and our logical restore): a table, the targets, notes."""
    if "stackops_backup_physical" not in backups:
        return None, [], []
    refs = {"backup": backups.get("pgbackrest_backup"), "restore": restores.get("pgbackrest_restore")}
    rows = []
    for phase, key, where in PITR_ROWS:
        item = (backups if phase == "backup" else restores).get(key)
        if not item:
            continue
        wall, ref = item["median_wall_s"], refs[phase]
        pair = paired(item, ref) if ref and key != ref["key"] else None
        phases = item.get("phase_seconds_median") or {}
        rows.append({
            "contender": item["label"], "where": where, "n": str(item["n"]) if item["available"] else "-",
            "wall": fmt(wall, "%.1f", " s") if wall is not None else NOT_AVAILABLE,
            "mbs": fmt(item["throughput_mb_s"], "%.0f"),
            "module": fmt(item.get("module_duration_s"), "%.1f", " s"),
            "phases": ", ".join("%s %.1f s" % (name, value) for name, value in phases.items()) or "-",
            "vs_pgbr": "1.00x" if ref and key == ref["key"] and wall else fmt(
                pair[0] / pair[1] if pair else None, "%.2fx"),
            "why": "" if item["available"] else (item["reason"] or NOT_AVAILABLE),
        })
    columns = [("contender", "contender"), ("where", "runs on"), ("n", "n"), ("wall", "median wall"), ("mbs", "MB/s"),
               ("module", "in the module"), ("phases", "module phases (median)"), ("vs_pgbr", "vs pgBackRest"),
               ("why", "not available because")]
    if all(not row["why"] for row in rows):
        columns = columns[:-1]
    table = ("Physical backup and point-in-time recovery — ours on compose stack %s, pgBackRest on the host cluster"
             % doc.get("settings", {}).get("pitr", {}).get("project", "bench-pitr"), columns, rows)
    targets = []
    for name, ours_key, ref_key, limit, phase in (
            ("stackops physical restore + start <= 1.3x pgBackRest restore + start + promote", "stackops_pitr_restore",
             "pgbackrest_restore", 1.3, "restore"),
            ("stackops physical backup <= 1.2x pgBackRest full", "stackops_backup_physical", "pgbackrest_backup", 1.2,
             "backup")):
        table_of = backups if phase == "backup" else restores
        ours, ref = table_of.get(ours_key), table_of.get(ref_key)
        pair = paired(ours, ref) if ours and ref else None
        if pair:
            ratio = pair[0] / pair[1]
            targets.append(target(name, ratio <= limit, "%.2fx (%.1f s vs %.1f s, %s)" % (
                ratio, pair[0], pair[1], rounds_text(pair[2], ours, ref))))
        else:
            why = (ours or {}).get("reason") or (ref or {}).get("reason") or NOT_AVAILABLE
            targets.append(target(name, None, why))
    notes = []
    data, pdata = doc.get("data") or {}, doc.get("pitr_data") or {}
    settings = doc.get("settings", {}).get("pitr", {})
    notes.append(
        "where they run: pgBackRest needs its binary where archive_command runs and the data directory on the same "
        "machine, so it runs on the host cluster; our PITR modules work on a compose service (Barman streams the WAL "
        "from it, a recovery swaps its data volume), so they run on an isolated copy of the demo stack (project %s, "
        "stock-like PostgreSQL 15 image, fsync on) loaded by the same generator: %.0f MB there, %.0f MB on the host "
        "cluster; server settings %s set on both" % (
            settings.get("project", "bench-pitr"), (pdata.get("size_bytes") or 0) / 2 ** 20,
            (data.get("size_bytes") or 0) / 2 ** 20,
            ", ".join("%s=%s" % kv for kv in (settings.get("server_settings") or {}).items()) or "-"))
    notes.append(
        "pgBackRest restore recovers to the backup's consistency point (--type=immediate) and is timed until "
        "pg_is_in_recovery() is false; stackops restore --to-latest replays all WAL received (the stack is idle, so "
        "little), checks the recovered cluster in a scratch container, swaps the service onto it and starts it "
        "through its health check, then streams WAL again from the new timeline; timed as the CLI returns")
    notes.append("settings of the stackops PITR runs: %s on every run; the timed restore rows add %s (in an incident "
                 "the service comes back first and the next base backup is taken after it); the `defaults` row uses "
                 "the role's defaults (stackops_pitr_backup_after_restore and stackops_pitr_verify_after_restore "
                 "true)" % (", ".join("%s=%s" % (k, json.dumps(v)) for k, v in (settings.get("stackops_vars_all_runs")
                                                                              or {}).items()) or "-",
                            ", ".join("%s=%s" % (k, json.dumps(v)) for k, v in (settings.get(
                                "stackops_vars_timed_restore") or {}).items()) or "-"))
    drill_rto = drill_summary(restores)
    if drill_rto:
        doc["drill_rto"] = drill_rto
        notes.append("restore drills (docs/drill.md): %s; the RTO is measured by the drill itself, from its start to "
                     "the application healthy on the restored copy and every check passed (the wall time adds the CLI, "
                     "ansible and the teardown)" % drill_rto)
    verified = backups.get("stackops_backup_physical_verified")
    if verified and verified.get("median_wall_s"):
        notes.append("stackops backup --physical with its default verification: %.1f s, of which %s s the base backup "
                     "(barman backup) and %s s the verification (barman recover to a scratch directory, "
                     "pg_verifybackup, a start in a scratch container and a query), as the module reports them" % (
                         verified["median_wall_s"], fmt(verified.get("module_duration_s"), "%.1f"),
                         fmt(verified.get("verify_s"), "%.1f")))
        doc["physical_verification_cost_s"] = verified.get("verify_s")
    for key in ("stackops_backup_physical", "stackops_pitr_restore"):
        item = backups.get(key) or restores.get(key)
        if item and item.get("median_wall_s") and item.get("module_duration_s"):
            tasks = sorted(item.get("task_durations_last_run") or [], key=lambda t: -t["s"])[:4]
            notes.append("%s: %.1f s in the module itself (median), %.1f s for the CLI, ansible and the other tasks; "
                         "slowest tasks of the last run: %s" % (
                             item["label"], item["module_duration_s"], item["median_wall_s"] - item["module_duration_s"],
                             "; ".join("%s %.1f s" % (t["task"], t["s"]) for t in tasks) or "-"))
    for kind, label in (("backup", "stackops backup --physical --no-verify"),
                        ("restore", "stackops restore --to-latest (timed rows)")):
        profile = (doc.get("pitr_profile") or {}).get(kind)
        if profile:
            notes.append("where the time of %s goes (median over its rounds; Barman's log and the tasks): %s" % (
                label, "; ".join("%s %.1f s" % item for item in profile.items())))
    defaults, incident = restores.get("stackops_pitr_restore_defaults"), restores.get("stackops_pitr_restore")
    if defaults and incident and defaults.get("median_wall_s") and incident.get("median_wall_s"):
        notes.append("the role's defaults add the verified base backup of the new timeline: %.1f s instead of %.1f s"
                     % (defaults["median_wall_s"], incident["median_wall_s"]))
    return table, targets, notes


def report_only():
    """Re-render the tables, targets, chart and README section from results/backup_restore.json."""
    doc = json.loads((RESULTS / "backup_restore.json").read_text())
    report(doc, doc["data"]["size_bytes"])


if __name__ == "__main__":
    if "--report-only" in sys.argv[1:]:
        report_only()
    else:
        main()
