"""Cold start of the demo stack: `stackops startup` vs `docker compose up -d --wait`, same stack, same run.

Each run starts from nothing (no containers, network or volumes of the benchmark project: `down -v`
before every run, untimed), so PostgreSQL initialises its data directory every time, as on a first
deployment. The images are prebuilt (scripts/bootstrap.sh builds them), so no run pulls or builds.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.contenders import Contender, paired, rounds_text, run_rounds  # noqa: E402
from benchlib.measure import display  # noqa: E402
from benchlib.report import (NOT_AVAILABLE, README, RESULTS, bar_chart, fmt, machine_info,  # noqa: E402
                             markdown_section, now_iso, print_report, target, update_marked_block, write_result)
from benchlib.settings import REPEAT, Workdir, ansible_env, log, stackops_missing, tool  # noqa: E402
from benchlib.stack import BenchStack  # noqa: E402


def main():
    work = Workdir("startup")
    stack = BenchStack(work.path)
    stack.write_env()
    inventory = stack.write_inventory(work / "inventory", hosts=1, prefix=None)
    env = ansible_env(work / "stackops-state")
    doc = {"benchmark": "startup", "started": now_iso(), "machine": machine_info(work.path),
           "settings": {"repeat": REPEAT, "project": stack.project}}
    try:
        contenders = [
            Contender("compose", "docker compose up -d --wait", "reference",
                      display(stack.compose_argv("up", "-d", "--wait")), prepare=stack.down),
            Contender("stackops", "stackops startup", "stackops",
                      "%s startup -i %s --json" % (tool("stackops") or "stackops", inventory),
                      prepare=stack.down),
        ]
        missing = stackops_missing("startup.yml")
        if missing:
            contenders[1].unavailable(missing)

        def serving(contender, result):
            states = stack.compose("ps", "--all", "--format", "{{.Service}} {{.State}} {{.Health}}").stdout
            bad = [line for line in states.splitlines() if not line.endswith("running healthy")]
            if bad or not states.strip():
                return "after %s not every service is running and healthy: %s" % (contender.label, bad or "none")
            return None

        log("startup: %d contenders x %d rounds (project %s)" % (len(contenders), REPEAT, stack.project))
        run_rounds(contenders, env, work.path, after_each=serving, phase="startup")
        doc["contenders"] = [c.summary(0) for c in contenders]
        doc["finished"] = now_iso()
        report(doc)
    finally:
        stack.down()
        work.cleanup()


def report(doc):
    by_key = {c["key"]: c for c in doc["contenders"]}
    base, ours = by_key["compose"], by_key["stackops"]
    rows = []
    for item in doc["contenders"]:
        wall = item["median_wall_s"]
        rows.append({"contender": item["label"], "n": item["n"] if item["available"] else "-",
                     "wall": fmt(wall, "%.1f", " s") if wall is not None else NOT_AVAILABLE,
                     "runs": ", ".join("%.1f" % w for w in item["wall_s_runs"]) or "-",
                     "ratio": fmt(wall / base["median_wall_s"] if wall and base["median_wall_s"] else None, "%.2f", "x"),
                     "why": "" if item["available"] else item["reason"]})
    columns = [("contender", "contender"), ("n", "n"), ("wall", "median wall"), ("runs", "runs (s)"),
               ("ratio", "vs compose")]
    if any(not c["available"] for c in doc["contenders"]):
        columns.append(("why", "not available because"))
    name = "stackops startup within 1.2x + 3 s of docker compose up -d --wait"
    pair = paired(ours, base)
    if pair:
        limit = 1.2 * pair[1] + 3
        targets = [target(name, pair[0] <= limit, "%.1f s vs limit %.1f s (compose %.1f s, %s)" % (
            pair[0], limit, pair[1], rounds_text(pair[2], ours, base)))]
    else:
        targets = [target(name, None, ours["reason"] or NOT_AVAILABLE)]
    doc["targets"] = targets
    title = "Cold start of the demo stack — median of up to %d runs" % doc["settings"]["repeat"]
    tables = [(None, columns, rows)]
    print_report(title, tables, targets)
    chart = RESULTS / "startup.png"
    bar_chart(chart, title, [(c["label"], c["median_wall_s"], c["kind"]) for c in doc["contenders"]])
    write_result("startup", doc)
    update_marked_block(README, "startup", markdown_section(title, tables, targets, when=doc["finished"]))


if __name__ == "__main__":
    if "--report-only" in sys.argv[1:]:
        report(json.loads((RESULTS / "startup.json").read_text()))
    else:
        main()
