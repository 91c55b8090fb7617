"""Fixed cost of a procedure, as a ratio to `ansible-playbook` of an empty play (ansible's own start-up).

The contenders: one no-op playbook through ansible-playbook, ansible-runner and `stackops` (the CLI's own cost),
then the read-only `stackops backups` of the real collection on an empty backup directory, and the same playbook
through ansible-playbook (what the collection's scaffolding costs: the result role, argument checks, the catalog
reads). `stackops` runs the playbooks of its collection only; for the no-op the benchmark gives it a throw-away
collection directory (STACKOPS_COLLECTION_DIR) whose playbooks/health.yml is benchmarks/playbooks/noop.yml, with
the checkout's ansible.cfg and collections path.
"""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.contenders import Contender, run_rounds  # noqa: E402
from benchlib.report import (NOT_AVAILABLE, README, REPO, RESULTS, bar_chart, fmt, machine_info,  # noqa: E402
                             markdown_section, now_iso, print_report, update_marked_block, write_result)
from benchlib.settings import Workdir, ansible_env, env_int, log, tool  # noqa: E402

NOOP = Path(__file__).resolve().parent / "playbooks" / "noop.yml"
EMPTY = Path(__file__).resolve().parent / "playbooks" / "empty.yml"
REFERENCE = "ansible_empty"
REPEAT = env_int("BENCH_OVERHEAD_REPEAT", max(5, env_int("BENCH_REPEAT", 3)))


def main():
    work = Workdir("overhead")
    doc = {"benchmark": "overhead", "started": now_iso(), "machine": machine_info(work.path),
           "settings": {"repeat": REPEAT, "playbook": str(NOOP.relative_to(REPO))}}
    try:
        inventory = work / "inventory"
        inventory.mkdir()
        (inventory / "hosts.yml").write_text(
            "all:\n  children:\n    stacks:\n      hosts:\n        bench-noop:\n          ansible_connection: local\n"
            "          ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n")
        # `stackops backups` reads the catalog files only: an empty backup directory, no database needed.
        (inventory / "group_vars").mkdir()
        (inventory / "group_vars" / "stacks.yml").write_text(
            "stackops_backup_dir: %s\nstackops_pitr_dir: %s\nstackops_compose_project_dir: %s\n" % (
                work / "backups", work / "pitr", work / "project"))
        fake_root = work / "collection"
        (fake_root / "playbooks").mkdir(parents=True)
        (fake_root / "playbooks" / "health.yml").symlink_to(NOOP)
        (fake_root / "ansible.cfg").symlink_to(REPO / "ansible.cfg")
        (fake_root / "collections").symlink_to(REPO / "collections")
        env = ansible_env(work / "stackops-state")

        backup_playbook = REPO / "playbooks" / "backup.yml"
        contenders = [
            Contender(REFERENCE, "ansible-playbook of an empty play", "reference",
                      "%s -i %s %s" % (tool("ansible-playbook"), inventory, EMPTY)),
            Contender("ansible_playbook", "ansible-playbook noop.yml", "raw",
                      "%s -i %s %s" % (tool("ansible-playbook"), inventory, NOOP)),
            Contender("ansible_runner", "ansible-runner API (ansible_runner.run)", "raw",
                      "%s %s %s %s" % (sys.executable, Path(__file__).resolve().parent / "benchlib" / "runner_noop.py",
                                       NOOP, inventory)),
            Contender("stackops", "stackops <procedure> (noop.yml)", "stackops",
                      "STACKOPS_COLLECTION_DIR=%s %s health -i %s" % (fake_root, tool("stackops"), inventory)),
            Contender("ansible_backups", "ansible-playbook backup.yml (list)", "raw",
                      "%s -i %s %s -e stackops_backup_action=list" % (tool("ansible-playbook"), inventory,
                                                                     backup_playbook)),
            Contender("stackops_backups", "stackops backups", "stackops",
                      "%s backups -i %s" % (tool("stackops"), inventory)),
        ]
        if not tool("stackops"):
            for contender in contenders:
                if contender.key.startswith("stackops"):
                    contender.unavailable("the stackops CLI is not installed in the venv")
        log("overhead: %d contenders x %d rounds" % (len(contenders), REPEAT))
        run_rounds(contenders, env, work.path, phase="overhead", repeat=REPEAT)
        doc["contenders"] = [c.summary(0) for c in contenders]
        doc["finished"] = now_iso()
        report(doc)
    finally:
        work.cleanup()


def report(doc):
    rows_by_key = {c["key"]: c for c in doc["contenders"]}
    # Results recorded before the empty-play reference existed are given against the no-op playbook.
    reference = rows_by_key.get(REFERENCE) or rows_by_key["ansible_playbook"]
    base = reference["median_wall_s"]
    rows = []
    for item in doc["contenders"]:
        wall = item["median_wall_s"]
        rows.append({"contender": item["label"], "n": item["n"] if item["available"] else "-",
                     "wall": fmt(wall, "%.2f", " s") if wall is not None else NOT_AVAILABLE,
                     "min": fmt(min(item["wall_s_runs"]) if item["wall_s_runs"] else None, "%.2f", " s"),
                     "extra": fmt(wall - base if wall is not None and base else None, "%+.2f", " s"),
                     "ratio": fmt(wall / base if wall is not None and base else None, "%.2f", "x"),
                     "mem": fmt(item["peak_pss_mib"], "%.0f", " MiB"),
                     "why": "" if item["available"] else item["reason"]})
    columns = [("contender", "contender"), ("n", "n"), ("wall", "median wall"), ("min", "fastest"),
               ("extra", "vs %s" % reference["label"]), ("ratio", "ratio"), ("mem", "peak mem")]
    if any(not c["available"] for c in doc["contenders"]):
        columns.append(("why", "not available because"))
    ours = rows_by_key["stackops"]
    notes = ["ratio: median wall time / that of `%s`; the stackops fixed cost includes its run history, the stack "
             "lock and the event handler (and no second ansible start-up to count tasks)" % reference["label"],
             "`stackops backups` on an empty backup directory is the fixed cost of a real read-only procedure: "
             "ansible's start-up, the result role, the argument checks and two catalog reads"]
    if ours["median_wall_s"] and base:
        doc["stackops_fixed_cost_s"] = round(ours["median_wall_s"] - base, 3)
    backups = rows_by_key.get("stackops_backups") or {}
    if backups.get("median_wall_s") and base:
        doc["stackops_backups_ratio"] = round(backups["median_wall_s"] / base, 2)
    title = "Overhead — fixed cost per procedure, median of %d runs" % doc["settings"]["repeat"]
    tables = [(None, columns, rows)]
    print_report(title, tables, [], notes)
    chart = RESULTS / "overhead.png"
    bar_chart(chart, title, [(c["label"], c["median_wall_s"], c["kind"]) for c in doc["contenders"]])
    write_result("overhead", doc)
    update_marked_block(README, "overhead", markdown_section(title, tables, [], notes, when=doc["finished"]))


if __name__ == "__main__":
    if "--report-only" in sys.argv[1:]:
        report(json.loads((RESULTS / "overhead.json").read_text()))
    else:
        os.environ.setdefault("ANSIBLE_NOCOLOR", "1")
        main()
