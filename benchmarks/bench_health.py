"""Health across a fleet: playbooks/health.yml against 1, 10 and 50 inventory hosts, and `stackops health`.

Every host is a distinct inventory name with ansible_connection=local, all pointing at one running
demo stack (project BENCH_PROJECT, own ports), so the numbers show how the playbook scales with the
host count on the control node (forks, per-host module runs), not network latency.
"""
import configparser
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.contenders import Contender, paired, rounds_text, run_rounds  # noqa: E402
from benchlib.report import (NOT_AVAILABLE, README, REPO, RESULTS, fmt, line_chart, machine_info,  # noqa: E402
                             markdown_section, now_iso, print_report, target, update_marked_block, write_result)
from benchlib.settings import REPEAT, Workdir, ansible_env, log, stackops_missing, tool  # noqa: E402
from benchlib.stack import BenchStack  # noqa: E402

# All fleet hosts share one Docker engine here, where a real fleet has one engine per host: concurrent
# `docker system df` calls on one engine refuse each other ("a disk usage operation is already running"),
# so the per-host Docker disk-usage check is off for the fleet runs (every other check runs).
# The fleet runs time the playbook; whether its checks pass is counted from its report (the critical and
# warning columns) instead of failing the run, because 50 hosts hammering one small stack on a loaded
# 2-CPU machine can push probe latencies past their thresholds.
FLEET_VARS = {"stackops_health_docker": False, "stackops_health_fail_on": "never"}
CHECK_LINE = re.compile(r"^\s*- '(OK|WARNING|CRITICAL|UNKNOWN)\s")
SIZES = [int(n) for n in os.environ.get("BENCH_FLEET_SIZES", "1,10,50").split(",")]


def configured_forks():
    parser = configparser.ConfigParser()
    parser.read(REPO / "ansible.cfg")
    return int(os.environ.get("BENCH_FORKS") or parser.get("defaults", "forks", fallback="5"))


def main():
    work = Workdir("health")
    stack = BenchStack(work.path)
    stack.write_env()
    env = ansible_env(work / "stackops-state")
    forks = configured_forks()
    doc = {"benchmark": "health", "started": now_iso(), "machine": machine_info(work.path),
           "settings": {"repeat": REPEAT, "fleet_sizes": SIZES, "forks": forks, "project": stack.project}}
    try:
        missing = stackops_missing("health.yml")
        fleet = []
        for size in SIZES:
            inventory = stack.write_inventory(work / ("inventory-%d" % size), hosts=size, extra_vars=FLEET_VARS)
            fleet.append(Contender(
                "fleet_%d" % size, "health.yml, %d host%s" % (size, "" if size == 1 else "s"), "stackops",
                "%s -f %d -i %s %s" % (tool("ansible-playbook"), forks, inventory, REPO / "playbooks" / "health.yml")))
        single = stack.write_inventory(work / "inventory-cli", hosts=1, prefix=None)
        cli = Contender("stackops_health", "stackops health (1 stack)", "stackops",
                        "%s health -i %s --json" % (tool("stackops") or "stackops", single))
        if missing:
            for contender in fleet + [cli]:
                contender.unavailable(missing)
        else:
            log("starting the demo stack as project %s (frontend port %d)" % (stack.project, stack.frontend_port))
            stack.down()
            stack.compose("up", "-d", "--wait")
            # One untimed run first: module caches, Python bytecode and the stack's own warm-up.
            Contender("warmup", "warm-up", "reference", fleet[0].command).execute(env, work.path)

        def count_checks(contender, result):
            counts = {}
            for line in result["output"].splitlines():
                match = CHECK_LINE.match(line)
                if match:
                    counts[match.group(1)] = counts.get(match.group(1), 0) + 1
            result["checks"] = counts
            return None

        log("health: %d contenders x %d rounds, forks %d" % (len(fleet) + 1, REPEAT, forks))
        run_rounds(fleet + [cli], env, work.path, after_each=count_checks, phase="health")
        doc["fleet"] = [dict(c.summary(0), hosts=size, checks_last_run=c.runs[-1].get("checks") if c.runs else None)
                        for c, size in zip(fleet, SIZES)]
        doc["cli"] = cli.summary(0)
        doc["finished"] = now_iso()
        report(doc)
    finally:
        stack.down()
        work.cleanup()


def _checks(counts):
    if not counts:
        return "-"
    return ", ".join("%d %s" % (counts[k], k) for k in ("OK", "WARNING", "CRITICAL", "UNKNOWN") if counts.get(k))


def report(doc):
    fleet = doc["fleet"]
    one = next((f for f in fleet if f["hosts"] == 1), None)
    forks = doc["settings"]["forks"]
    rows = []
    for item in fleet:
        wall = item["median_wall_s"]
        rows.append({"hosts": item["hosts"], "forks": min(forks, item["hosts"]), "n": item["n"] if item["available"] else "-",
                     "wall": fmt(wall, "%.1f", " s") if wall is not None else NOT_AVAILABLE,
                     "per_host": fmt(wall / item["hosts"] if wall else None, "%.2f", " s"),
                     "ratio": fmt(wall / one["median_wall_s"] if wall and one and one["median_wall_s"] else None, "%.2f", "x"),
                     "mem": fmt(item["peak_pss_mib"], "%.0f", " MiB"),
                     "checks": _checks(item.get("checks_last_run")),
                     "why": "" if item["available"] else item["reason"]})
    columns = [("hosts", "hosts"), ("forks", "forks used"), ("n", "n"), ("wall", "median wall"),
               ("per_host", "per host"), ("ratio", "vs 1 host"), ("mem", "peak mem"),
               ("checks", "check results (last run, all hosts)")]
    if any(not f["available"] for f in fleet):
        columns.append(("why", "not available because"))
    cli = doc["cli"]
    cli_rows = [{"contender": cli["label"], "n": cli["n"] if cli["available"] else "-",
                 "wall": fmt(cli["median_wall_s"], "%.1f", " s") if cli["median_wall_s"] else NOT_AVAILABLE,
                 "runs": ", ".join("%.1f" % w for w in cli["wall_s_runs"]) or "-",
                 "why": "" if cli["available"] else cli["reason"]}]
    cli_columns = [("contender", "contender"), ("n", "n"), ("wall", "median wall"), ("runs", "runs (s)")]
    if not cli["available"]:
        cli_columns.append(("why", "not available because"))
    targets = []
    big = max(fleet, key=lambda f: f["hosts"])
    name = "health of %d hosts under 3x the time of 1 host" % big["hosts"]
    pair = paired(big, one) if one else None
    if pair:
        ratio = pair[0] / pair[1]
        targets.append(target(name, ratio < 3, "%.2fx (%.1f s vs %.1f s, forks %d, %s)" % (
            ratio, pair[0], pair[1], forks, rounds_text(pair[2], big, one))))
    else:
        targets.append(target(name, None, big["reason"] or NOT_AVAILABLE))
    if cli["median_wall_s"]:
        targets.append(target("stackops health on the healthy stack under 5 s", cli["median_wall_s"] < 5,
                              "%.1f s" % cli["median_wall_s"]))
    else:
        targets.append(target("stackops health on the healthy stack under 5 s", None, cli["reason"] or NOT_AVAILABLE))
    doc["targets"] = targets
    title = "Health across a fleet (ansible_connection=local, one stack) — median of up to %d runs" % (
        doc["settings"]["repeat"])
    tables = [("playbooks/health.yml via ansible-playbook -f %d" % forks, columns, rows),
              ("stackops health", cli_columns, cli_rows)]
    notes = ["fleet runs set stackops_health_docker=false (the hosts share one Docker engine, which runs one "
             "`docker system df` at a time) and stackops_health_fail_on=never (the run is timed to the end; its check "
             "results are counted in the table); `stackops health` runs with the defaults",
             "host load thresholds are raised for all runs: the machine is shared and its load is not the stack's"]
    print_report(title, tables, targets, notes)
    chart = RESULTS / "health.png"
    line_chart(chart, title, [("health.yml (forks %d)" % forks,
                               [(f["hosts"], f["median_wall_s"]) for f in fleet])],
               "inventory hosts", "median wall time (s)")
    write_result("health", doc)
    update_marked_block(README, "health", markdown_section(title, tables, targets, notes, when=doc["finished"]))


if __name__ == "__main__":
    if "--report-only" in sys.argv[1:]:
        report(json.loads((RESULTS / "health.json").read_text()))
    else:
        main()
