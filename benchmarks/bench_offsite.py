#!/usr/bin/env python3
"""Off-site copies: upload and download throughput next to the local backup of the same set (docs/offsite.md).

One generated database (BENCH_DB_MB, the benchmark schema of benchlib.pgserver) on a benchmark-owned host
PostgreSQL 15 cluster, one real S3 server (SeaweedFS `weed server -s3` on 127.0.0.1, ports BENCH_S3_PORT to +8,
default 56780). Each round is one playbook of module tasks, run through ansible-runner: pg_backup (the local
backup), pg_backup_verify, offsite_copy plaintext and age-encrypted (upload, remote check), offsite_fetch of
both (download, check, decrypt). The modules time themselves (duration_seconds), so the table has the steps'
own times, without ansible's start-up. Median of BENCH_REPEAT rounds; see benchmarks/README.md. Never part of
`make test`.

    .venv/bin/python benchmarks/bench_offsite.py          # or BENCH_ONLY=offsite make bench
"""
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib import pgserver  # noqa: E402
from benchlib.measure import median  # noqa: E402
from benchlib.report import (README, REPO, RESULTS, fmt, machine_info, markdown_section, now_iso,  # noqa: E402
                             print_report, update_marked_block, write_result)
from benchlib.settings import DB_MB, KEEP, REPEAT, Workdir, ansible_env, env_int, log  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
from support.s3server import S3Server  # noqa: E402  pylint: disable=wrong-import-position

DB = "bench_offsite"
S3_PORT = env_int("BENCH_S3_PORT", 56780)
STEPS = (("backup", "local backup (pg_backup, zstd)"), ("verify", "local verification (pg_backup_verify)"),
         ("upload", "upload + remote check (offsite_copy)"), ("upload_age", "upload, age-encrypted"),
         ("download", "download + check (offsite_fetch)"), ("download_age", "download + check + decrypt"))
TRANSFERS = ("upload", "upload_age", "download", "download_age")


def batch(workdir, tasks, label):
    """Run module tasks as one playbook; {task name: result}. A failed task stops the benchmark with its message."""
    import ansible_runner
    import yaml
    private = workdir / "runs" / label
    private.mkdir(parents=True)
    play = [{"name": label, "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": name, module: args, "register": name} for name, module, args in tasks]}]
    (private / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    runner = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(REPO), playbook=str(private / "play.yml"),
        inventory="localhost ansible_connection=local ansible_python_interpreter=%s" % sys.executable,
        envvars=ansible_env(), quiet=True, timeout=7200)
    out = {}
    for event in runner.events:
        if event.get("event") in ("runner_on_ok", "runner_on_failed"):
            data = event["event_data"]
            if event["event"] == "runner_on_failed":
                raise RuntimeError("%s failed: %s" % (data["task"], data["res"].get("msg")))
            out[data["task"]] = data["res"]
    if runner.rc != 0 or len(out) != len(tasks):
        raise RuntimeError("playbook %s ended with rc %s after %d of %d tasks (see %s)" % (
            label, runner.rc, len(out), len(tasks), private))
    return out


def main():
    work = Workdir("offsite")
    doc = {"benchmark": "offsite", "started": now_iso(), "machine": machine_info(work.path),
           "settings": {"repeat": REPEAT, "db_mb_target": DB_MB, "s3_port": S3_PORT,
                        "s3_server": "SeaweedFS weed server -s3 on 127.0.0.1 (loopback, same machine)",
                        "server_settings": pgserver.SERVER_SETTINGS}}
    cluster = pgserver.BenchCluster(work.path)
    s3 = None
    try:
        log("initialising a PostgreSQL 15 cluster on port %d" % cluster.port)
        cluster.init().start()
        log("starting the S3 server (weed) on 127.0.0.1:%d" % S3_PORT)
        s3 = S3Server(S3_PORT, "bench-" + secrets.token_hex(8)).start()
        log("generating a ~%d MB database (BENCH_DB_MB)" % DB_MB)
        data = pgserver.generate(cluster, DB, DB_MB, log=log)
        doc["data"] = data
        key = work.path / "age-key.txt"
        subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
        public = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                                text=True).stdout.strip()
        pg = {"login_host": "127.0.0.1", "login_port": cluster.port, "login_user": "postgres",
              "login_password": cluster.password, "tools_location": "host"}
        runs = {name: [] for name, unused in STEPS}
        transferred = {name: [] for name in TRANSFERS}
        set_bytes = []
        for index in range(1, REPEAT + 1):
            log("round %d/%d: backup, verify, upload (plain, age), download (plain, age)" % (index, REPEAT))
            backups, fetched = work.path / ("backups-%d" % index), work.path / ("fetched-%d" % index)
            plain, encrypted = s3.target("round%d" % index), s3.target("round%d-age" % index)
            tasks = [
                ("backup", "stackops.runbooks.pg_backup", dict(pg, backup_dir=str(backups), database=DB)),
                ("verify", "stackops.runbooks.pg_backup_verify",
                 dict(pg, backup_dir=str(backups), backup_id="{{ backup.backup_id }}")),
                ("upload", "stackops.runbooks.offsite_copy", dict(plain, backup_dir=str(backups), database=DB)),
                ("upload_age", "stackops.runbooks.offsite_copy",
                 dict(encrypted, backup_dir=str(backups), database=DB, age_recipients=[public])),
                ("download", "stackops.runbooks.offsite_fetch", dict(plain, database=DB, dest=str(fetched / "p"))),
                ("download_age", "stackops.runbooks.offsite_fetch",
                 dict(encrypted, database=DB, dest=str(fetched / "a"), age_identity_file=str(key))),
            ]
            results = batch(work.path, tasks, "offsite-round-%d" % index)
            set_bytes.append(results["backup"]["size_bytes"])
            for name, unused in STEPS:
                runs[name].append(results[name]["duration_seconds"])
            transferred["upload"].append(results["upload"].get("uploaded_bytes"))
            transferred["upload_age"].append(results["upload_age"].get("uploaded_bytes"))
            for name in ("download", "download_age"):
                transferred[name].append(results[name].get("downloaded_bytes") or results[name].get("bytes"))
            log("  " + ", ".join("%s %.1f s" % (name, runs[name][-1]) for name, unused in STEPS))
            shutil.rmtree(backups, ignore_errors=True)
            shutil.rmtree(fetched, ignore_errors=True)
        doc["set_bytes"] = median(set_bytes)
        doc["steps"] = []
        for name, label in STEPS:
            moved = median([b for b in transferred.get(name, []) if b])
            doc["steps"].append({"key": name, "label": label, "n": len(runs[name]),
                                 "seconds_runs": [round(s, 3) for s in runs[name]],
                                 "median_s": round(median(runs[name]), 3),
                                 "bytes_moved": moved})
        doc["finished"] = now_iso()
        doc["machine"]["loadavg_at_end"] = list(os.getloadavg())
        report(doc)
    finally:
        if s3:
            s3.stop()
        cluster.destroy(keep_files=KEEP)
        work.cleanup()


def report(doc):
    set_mib = doc["set_bytes"] / 2 ** 20
    db_mb = doc["data"]["size_bytes"] / 2 ** 20
    steps = {step["key"]: step for step in doc["steps"]}
    backup_s = steps["backup"]["median_s"]
    rows = []
    for step in doc["steps"]:
        seconds = step["median_s"]
        rows.append({"step": step["label"], "n": str(step["n"]), "seconds": fmt(seconds, "%.1f", " s"),
                     "set_rate": fmt(set_mib / seconds if seconds else None, "%.0f"),
                     "db_rate": fmt(db_mb / seconds if seconds else None, "%.0f"),
                     "moved": fmt(step["bytes_moved"] / 2 ** 20 if step.get("bytes_moved") else None, "%.0f", " MiB"),
                     "vs_backup": fmt(seconds / backup_s if backup_s else None, "%.2fx")})
    columns = [("step", "step"), ("n", "n"), ("seconds", "median (module)"), ("set_rate", "MiB/s of the set"),
               ("db_rate", "MB/s of the database"), ("moved", "bytes moved"), ("vs_backup", "x local backup")]
    throughput = {name: round(set_mib / steps[name]["median_s"], 1) for name in TRANSFERS if steps[name]["median_s"]}
    doc["throughput_mib_s"] = throughput
    doc["summary"] = ("upload %.0f MiB/s (age %.0f), download %.0f MiB/s (age %.0f) of a %.0f MiB set; local backup "
                      "%.1f s, upload %.2fx and download %.2fx of it" % (
                          throughput.get("upload", 0), throughput.get("upload_age", 0), throughput.get("download", 0),
                          throughput.get("download_age", 0), set_mib, backup_s,
                          steps["upload"]["median_s"] / backup_s, steps["download"]["median_s"] / backup_s))
    doc["targets"] = []
    notes = [
        "the S3 server is SeaweedFS on 127.0.0.1 on the same 2 CPUs: the numbers are what the modules cost (read, "
        "hash, multipart upload, remote check; download, check against the manifest, decrypt), not a network; on "
        "a real link the transfer is bounded by its bandwidth instead",
        "upload includes the remote check (sizes and ETags against the manifest) and writing the completion marker; "
        "download includes the check of every file against the manifest; the age rows encrypt before upload and "
        "decrypt after download",
        "times are the modules' own duration_seconds (no ansible start-up); each round runs the six steps in one "
        "playbook, in the order of the table",
    ]
    notes.append(load_note(doc.get("machine", {})))
    title = "Off-site copy — %.0f MB database, %.0f MiB backup set, median of %d round%s" % (
        db_mb, set_mib, len(steps["backup"]["seconds_runs"]), "" if len(steps["backup"]["seconds_runs"]) == 1 else "s")
    tables = [("", columns, rows)]
    print_report(title, tables, [], notes + [doc["summary"]])
    path = write_result("offsite", doc)
    update_marked_block(README, "offsite", markdown_section(title, tables, [], notes, when=doc["finished"]))
    log("wrote %s" % path)


def load_note(machine):
    start, end = machine.get("loadavg_at_start"), machine.get("loadavg_at_end")
    fmt_load = lambda load: "/".join("%.1f" % x for x in load) if load else "?"  # noqa: E731
    return ("load average %s at start, %s at end on %s CPUs: the machine is shared with other work, so absolute "
            "times are noisy; compare the rows of one run" % (fmt_load(start), fmt_load(end), machine.get("nproc")))


def report_only():
    report(json.loads((RESULTS / "offsite.json").read_text()))


if __name__ == "__main__":
    if "--report-only" in sys.argv[1:]:
        report_only()
    else:
        main()
