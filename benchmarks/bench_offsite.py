#!/usr/bin/env python3
"""Off-site copy throughput next to the local backup it copies (docs/offsite.md).

One generated database (BENCH_DB_MB, the benchmark schema of benchlib.pgserver) on a host PostgreSQL, one real S3
server (SeaweedFS `weed server -s3` on loopback, ports from BENCH_S3_PORT); per round, in one ansible-runner run:
pg_backup (the local backup time), s3_backup_copy plaintext and age-encrypted (upload), s3_backup_fetch of both
(download, check, decrypt). Prints a table of medians and writes results/offsite.json. Never part of `make test`.

    .venv/bin/python benchmarks/bench_offsite.py          # BENCH_DB_MB=1024 BENCH_REPEAT=3 by default
"""
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

from benchlib.measure import median  # noqa: E402
from benchlib.pgserver import BenchCluster, generate  # noqa: E402
from benchlib.report import machine_info, render_text_table  # noqa: E402
from support.s3server import S3Server  # noqa: E402

DB = "bench_offsite"


def batch(tasks, label):
    """Run module tasks in one playbook; return {name: (result, seconds)} from the event durations."""
    import ansible_runner
    import yaml
    from support.runner import _private_dir, runner_env
    private = _private_dir(label)
    play = [{"name": label, "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": name, module: args, "register": name} for name, module, args in tasks]}]
    (private / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    runner = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(REPO), playbook=str(private / "play.yml"),
        inventory="localhost ansible_connection=local ansible_python_interpreter=%s" % sys.executable,
        envvars=runner_env(), quiet=True, timeout=7200)
    out = {}
    for event in runner.events:
        if event.get("event") in ("runner_on_ok", "runner_on_failed"):
            data = event["event_data"]
            if event["event"] == "runner_on_failed":
                raise SystemExit("%s failed: %s" % (data["task"], data["res"].get("msg")))
            out[data["task"]] = data["res"]
    return out


def main():
    size_mb = int(os.environ.get("BENCH_DB_MB", "1024"))
    repeat = int(os.environ.get("BENCH_REPEAT", "3"))
    workdir = Path(os.environ.get("BENCH_WORKDIR") or tempfile.mkdtemp(prefix="stackops-bench-offsite-",
                                                                      dir="/var/tmp"))
    os.chmod(workdir, 0o755)  # the cluster runs as postgres below it
    cluster = BenchCluster(workdir).init().start()
    s3 = S3Server(int(os.environ.get("BENCH_S3_PORT", "56780")), "bench-" + secrets.token_hex(8)).start()
    try:
        generate(cluster, DB, size_mb)
        key = workdir / "age-key.txt"
        subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
        public = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                                text=True).stdout.strip()
        pg = {"login_host": "127.0.0.1", "login_port": cluster.port, "login_user": "postgres",
              "login_password": cluster.password, "tools_location": "host"}
        rows = {name: [] for name in ("backup", "upload", "upload_age", "download", "download_age")}
        sizes = {}
        for index in range(repeat):
            backups = workdir / ("backups-%d" % index)
            work = workdir / ("work-%d" % index)
            target = s3.target("round%d" % index)
            tasks = [
                ("backup", "stackops.runbooks.pg_backup", dict(pg, backup_dir=str(backups), database=DB)),
                ("verify", "stackops.runbooks.pg_backup_verify",
                 dict(pg, backup_dir=str(backups), backup_id="{{ backup.backup_id }}")),
                ("upload", "stackops.runbooks.s3_backup_copy", dict(target, backup_dir=str(backups), database=DB)),
                ("upload_age", "stackops.runbooks.s3_backup_copy",
                 dict(s3.target("round%d-age" % index), backup_dir=str(backups), database=DB, age_recipients=[public])),
                ("download", "stackops.runbooks.s3_backup_fetch", dict(target, database=DB, dest=str(work / "p"))),
                ("download_age", "stackops.runbooks.s3_backup_fetch",
                 dict(s3.target("round%d-age" % index), database=DB, dest=str(work / "a"),
                      age_identity_file=str(key))),
            ]
            results = batch(tasks, "bench-offsite-%d" % index)
            sizes["set_bytes"] = results["backup"]["size_bytes"]
            rows["backup"].append(results["backup"]["duration_seconds"])
            for name in ("upload", "upload_age", "download", "download_age"):
                rows[name].append(results[name]["duration_seconds"])
            shutil.rmtree(backups, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
        mib = sizes["set_bytes"] / 1024.0 / 1024.0
        table = []
        for name, label in (("backup", "local backup (pg_backup, zstd)"), ("upload", "upload (s3_backup_copy)"),
                            ("upload_age", "upload, age-encrypted"), ("download", "download + check (s3_backup_fetch)"),
                            ("download_age", "download + check + decrypt")):
            seconds = median(rows[name])
            table.append({"step": label, "seconds": "%.1f" % seconds, "rate": "%.1f" % (mib / seconds),
                          "ratio": "%.2f" % (seconds / median(rows["backup"]))})
        print("database %d MB, backup set %.1f MiB, %d rounds (median)" % (size_mb, mib, repeat))
        print(render_text_table([("step", "step"), ("seconds", "seconds"), ("rate", "MiB/s of the set"),
                                 ("ratio", "x local backup")], table))
        results_dir = HERE / "results"
        results_dir.mkdir(exist_ok=True)
        (results_dir / "offsite.json").write_text(json.dumps({
            "benchmark": "offsite", "db_mb": size_mb, "set_bytes": sizes["set_bytes"], "repeat": repeat,
            "seconds": rows, "machine": machine_info(workdir), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            indent=2, default=str))
    finally:
        s3.stop()
        cluster.destroy()
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
