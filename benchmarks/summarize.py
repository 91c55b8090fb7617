"""The targets of every benchmark from benchmarks/results/*.json, into README.md and docs/performance.md."""
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.report import (PERFORMANCE_DOC, PROJECT_README, README, RESULTS, render_markdown_table,  # noqa: E402
                             render_text_table, update_marked_block)

ORDER = (("backup_restore", "backup / restore"), ("startup", "startup"), ("health", "health"),
         ("overhead", "overhead"), ("offsite", "off-site"))


def machine_line(machine):
    versions = machine.get("versions", {})
    disk = machine.get("disk", {})
    pg_version = re.search(r"\d+\.\d+", versions.get("postgres") or "")
    return "%s CPUs (%s), %s GiB RAM, disk %s (%s GiB free, rotational flag %s), %s; PostgreSQL %s, " \
           "ansible-core %s, docker %s; load average at start %s" % (
               machine.get("nproc"), machine.get("cpu_model"), machine.get("memory", {}).get("total_gib"),
               disk.get("device") or "?", disk.get("free_gib"),
               {True: "on", False: "off"}.get(disk.get("rotational"), "?"), machine.get("os"),
               pg_version.group(0) if pg_version else "?", versions.get("ansible_core"), versions.get("docker"),
               "/".join("%.1f" % x for x in machine.get("loadavg_at_start", [])))


def main():
    rows, machines = [], []
    for name, label in ORDER:
        path = RESULTS / ("%s.json" % name)
        if not path.exists():
            rows.append({"bench": label, "target": "-", "verdict": "not run", "detail": "no %s" % path.name, "when": "-"})
            continue
        doc = json.loads(path.read_text())
        machines.append((label, doc.get("machine", {})))
        when = doc.get("finished", "-")
        for target in doc.get("targets", []):
            rows.append({"bench": label, "target": target["name"], "verdict": target["verdict"].upper(),
                         "detail": target["detail"], "when": when})
        if name == "overhead" and doc.get("stackops_fixed_cost_s") is not None:
            rows.append({"bench": label, "target": "fixed cost of stackops over ansible-playbook (no target)",
                         "verdict": "-", "detail": "%+.2f s per procedure" % doc["stackops_fixed_cost_s"], "when": when})
        if name == "backup_restore" and doc.get("verification_cost_s") is not None:
            rows.append({"bench": label, "target": "verification cost of stackops backup (no target)",
                         "verdict": "-", "detail": "%.1f s" % doc["verification_cost_s"], "when": when})
        if name == "backup_restore" and doc.get("physical_verification_cost_s") is not None:
            rows.append({"bench": label, "target": "verification cost of stackops backup --physical (no target)",
                         "verdict": "-", "detail": "%.1f s" % doc["physical_verification_cost_s"], "when": when})
        if name == "backup_restore" and doc.get("drill_rto"):
            rows.append({"bench": label, "target": "restore drill RTO, logical and physical (no target)",
                         "verdict": "-", "detail": doc["drill_rto"], "when": when})
        if name == "offsite" and doc.get("summary"):
            rows.append({"bench": label, "target": "upload and download throughput (no target)", "verdict": "-",
                         "detail": doc["summary"], "when": when or doc.get("at", "-")})
    columns = [("bench", "benchmark"), ("target", "target"), ("verdict", "verdict"), ("detail", "measured"),
               ("when", "measured at (UTC)")]
    print(render_text_table(columns, rows))
    text = render_markdown_table(columns, rows)
    if machines:
        text += "\n\nMachine: " + machine_line(machines[0][1]) + "."
    for path in (README, PERFORMANCE_DOC, PROJECT_README):
        update_marked_block(path, "summary", text)


if __name__ == "__main__":
    main()
