"""The operator's report: one self-contained HTML page per run, built from its history directory.

The page has no scripts and no external assets (inline CSS and SVG only), every value is escaped
with html.escape, and the model is redacted (runmodel.redact) before it is rendered. The data
comes from runmodel.py (record, events, timeline, health) and rpo.py (backups and the RPO
verdict); this module only lays it out, so tests can drive each part with plain data.
"""
import datetime
import html
import json
import re
from pathlib import Path

from . import __version__
from .errors import ReportError
from .rpo import TREND_LENGTH, find_backups, rpo_check
from .runmodel import SEVERITY_RANK, build_timeline, find_health, find_maintenance, find_procedure, load_run, redact
from .units import human_bytes, human_duration

REPORT_NAME = "report.html"


# ---------------------------------------------------------------- small pure helpers

def esc(value):
    """Escape anything for HTML text and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def bar_geometry(start, end, origin, total, min_width=0.4):
    """Left offset and width of a bar, in percent of the axis [origin, origin + total].

    Bars are clamped into the axis; a zero-length step still gets min_width so it stays visible.
    """
    if not total or total <= 0:
        return 0.0, 100.0
    left = max(0.0, min(100.0, (start - origin) / total * 100.0))
    width = max(0.0, (end - start) / total * 100.0)
    width = max(min_width, width)
    if left + width > 100.0:
        left = max(0.0, 100.0 - width)
        width = min(width, 100.0)
    return round(left, 3), round(width, 3)


def scaled_heights(values, max_height):
    """Bar heights proportional to values, the largest at max_height (all zero stays zero)."""
    numbers = [max(0.0, float(v or 0)) for v in values]
    top = max(numbers) if numbers else 0.0
    if top <= 0:
        return [0.0 for _ in numbers]
    return [round(v / top * max_height, 2) for v in numbers]


# ---------------------------------------------------------------- the model

def build_model(summary, events, trend_length=TREND_LENGTH):
    """Everything the page shows, as plain (redacted) data."""
    summary = redact(summary or {})
    events = redact(events or [])
    return {
        "summary": summary,
        "timeline": build_timeline(events),
        "health": find_health(events, summary),
        "backups": find_backups(events, summary, trend_length),
        "maintenance": find_maintenance(summary),
        "drill": find_procedure(summary, "drill"),
        "status": find_procedure(summary, "status"),
        "generated_at": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
    }


# ---------------------------------------------------------------- rendering

CSS = """
:root { --ok:#1a7f37; --warn:#b06f00; --crit:#c62828; --muted:#5f6b76; --line:#d8dee4; --bg:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Roboto, sans-serif; color:#1f2328;
       margin: 0; padding: 24px 32px 40px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 10px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; } h3 { font-size: 14px; margin: 16px 0 6px; }
.sub { color: var(--muted); font-size: 13px; } code, .mono { font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: 12.5px; }
.badge { display:inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; font-size: 12px; color:#fff;
         background: var(--muted); vertical-align: middle; }
.status-successful, .sev-ok .badge, .badge.sev-ok, .verified-yes { background: var(--ok); }
.status-failed, .status-unreachable, .status-timeout, .sev-critical .badge, .badge.sev-critical, .verified-no { background: var(--crit); }
.status-canceled, .status-locked, .status-refused, .sev-warning .badge, .badge.sev-warning, .verified-skipped { background: var(--warn); }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-weight: 600; font-size: 12.5px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 8px 16px; margin: 12px 0; }
.fact { background: var(--bg); border-radius: 6px; padding: 8px 10px; }
.fact .k { color: var(--muted); font-size: 12px; } .fact .v { font-weight: 600; word-break: break-all; }
tr.sev-critical td { background: #fdecea; } tr.sev-warning td { background: #fff6e0; }
.timeline { margin-top: 6px; }
.tl-axis .tl-track { background: none; height: 16px; border-left: 1px solid var(--line); }
.tl-axis .tick { position: absolute; top: 0; transform: translateX(-50%); color: var(--muted); font-size: 11px; }
.tl-axis .tick:first-child { transform: none; } .tl-axis .tick:last-child { transform: translateX(-100%); }
.tl-row { display: flex; align-items: center; min-height: 20px; }
.tl-row .tl-label { width: 34%; padding-right: 10px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; font-size: 12.5px; }
.tl-row .tl-track { position: relative; flex: 1; height: 14px; background: var(--bg); border-radius: 3px; }
.tl-row .tl-dur { width: 70px; text-align: right; font-size: 12px; color: var(--muted); font-variant-numeric: tabular-nums; }
.tl-phase .tl-label { font-weight: 600; } .tl-phase .tl-track { height: 16px; }
.tl-task .tl-label { padding-left: 16px; color: #333; }
.bar { position: absolute; top: 0; bottom: 0; border-radius: 3px; background: #4c8bf5; min-width: 2px; }
.tl-phase .bar { background: #2f5fb3; }
.bar.st-changed { background: #d29922; } .bar.st-failed, .bar.st-unreachable { background: var(--crit); }
.bar.st-skipped { background: #b8c0c8; } .bar.st-ignored { background: #e0a4a4; }
details > summary { cursor: default; list-style: none; } details > summary::-webkit-details-marker { display: none; }
.legend .key { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin: 0 4px 0 10px; }
.trend svg { display: block; } .trend .lbl { font-size: 10px; fill: var(--muted); }
.callout { border-left: 4px solid var(--muted); background: var(--bg); padding: 8px 12px; margin: 8px 0; border-radius: 0 6px 6px 0; }
.callout.bad { border-color: var(--crit); background: #fdecea; } .callout.good { border-color: var(--ok); background: #eaf6ec; }
.callout.warn { border-color: var(--warn); background: #fff6e0; }
pre { background: var(--bg); padding: 10px; border-radius: 6px; overflow-x: auto; font-size: 12px; white-space: pre-wrap; word-break: break-word; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
"""


def _fact(key, value, raw=False):
    return '<div class="fact"><div class="k">%s</div><div class="v">%s</div></div>' % (
        esc(key), value if raw else esc(value))


def _badge(text, css):
    return '<span class="badge %s">%s</span>' % (esc(css), esc(text))


def _sev_class(severity):
    return "sev-%s" % str(severity or "critical").lower() if str(severity).upper() in SEVERITY_RANK else "sev-critical"


def render_header(summary):
    status = summary.get("status") or "unknown"
    check = " (check mode)" if summary.get("check") else ""
    parts = ['<header id="summary">',
             '<h1>stackops %s %s%s</h1>' % (esc(summary.get("procedure") or "run"),
                                             _badge(status, "status-%s" % status), esc(check)),
             '<div class="sub">run <code>%s</code></div>' % esc(summary.get("run_id")),
             '<div class="facts">',
             _fact("started", summary.get("started") or "-"),
             _fact("finished", summary.get("finished") or "-"),
             _fact("duration", human_duration(summary.get("duration"))),
             _fact("exit code", summary.get("exit_code") if summary.get("exit_code") is not None else "-"),
             _fact("changed", summary.get("changed") if summary.get("changed") is not None else "-"),
             _fact("inventory", summary.get("inventory") or "-"),
             _fact("limit", summary.get("limit") or "all hosts"),
             _fact("playbook", Path(str(summary.get("playbook") or "-")).name),
             '</div>']
    if summary.get("error"):
        parts.append('<div class="callout bad" id="error"><strong>error:</strong> <span class="mono">%s</span></div>'
                     % esc(summary["error"]))
    hosts = summary.get("hosts") or {}
    if hosts:
        columns = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")
        parts.append('<table id="hosts"><thead><tr><th>host</th>%s</tr></thead><tbody>' % "".join(
            '<th class="num">%s</th>' % c for c in columns))
        for host, stats in sorted(hosts.items()):
            bad = stats.get("failed") or stats.get("unreachable")
            parts.append('<tr class="%s"><td>%s</td>%s</tr>' % (
                "sev-critical" if bad else "sev-ok", esc(host),
                "".join('<td class="num">%s</td>' % esc(stats.get(c, 0)) for c in columns)))
        parts.append("</tbody></table>")
    failed = summary.get("failed_tasks") or []
    unreachable = summary.get("unreachable_hosts") or []
    if failed or unreachable:
        parts.append('<section id="failures"><h2>Failures</h2><table><thead><tr><th>host</th><th>task</th>'
                     '<th>message</th></tr></thead><tbody>')
        for item in failed:
            note = " (rescued)" if item.get("rescued") else ""
            parts.append('<tr class="%s"><td>%s</td><td>%s%s</td><td class="mono">%s</td></tr>' % (
                "sev-warning" if item.get("rescued") else "sev-critical", esc(item.get("host")),
                esc(item.get("task")), esc(note), esc(item.get("message"))))
        for item in unreachable:
            parts.append('<tr class="sev-critical"><td>%s</td><td>%s (unreachable)</td><td class="mono">%s</td></tr>'
                         % (esc(item.get("host")), esc(item.get("task")), esc(item.get("message"))))
        parts.append("</tbody></table></section>")
    parts.append("</header>")
    return "\n".join(parts)


def render_timeline(timeline, max_tasks_open=60):
    phases = timeline.get("phases") or []
    if not phases:
        return '<section id="timeline"><h2>Timeline</h2><p class="sub">No task events were recorded for this run.</p></section>'
    origin = timeline["start"]
    total = timeline["duration"] or max(0.001, max(p["end"] for p in phases) - origin)
    ticks = "".join('<span class="tick" style="left:%d%%">%s</span>' % (25 * i, esc(human_duration(total * i / 4)))
                    for i in range(5))
    parts = ['<section id="timeline"><h2>Timeline</h2>',
             '<div class="sub">%d phases, %d tasks, %s from the first to the last event; bars are placed on the '
             'run\'s clock (colour: ok, <span style="color:#d29922">changed</span>, '
             '<span style="color:#c62828">failed</span>, <span style="color:#8a949e">skipped</span>).</div>' % (
                 len(phases), timeline.get("task_count", 0), esc(human_duration(total))),
             '<div class="timeline"><div class="tl-row tl-axis"><div class="tl-label"></div>'
             '<div class="tl-track">%s</div><div class="tl-dur"></div></div>' % ticks]
    open_attr = " open" if timeline.get("task_count", 0) <= max_tasks_open else ""
    for index, phase in enumerate(phases):
        left, width = bar_geometry(phase["start"], phase["end"], origin, total)
        parts.append('<details class="tl-group"%s><summary><div class="tl-row tl-phase" data-phase="%d">'
                     '<div class="tl-label" title="%s">%s</div><div class="tl-track">'
                     '<div class="bar st-%s" style="left:%.3f%%;width:%.3f%%"></div></div>'
                     '<div class="tl-dur">%s</div></div></summary>' % (
                         open_attr, index, esc(phase["label"]), esc(phase["label"]), esc(phase["status"]),
                         left, width, esc(human_duration(phase["duration"]))))
        for task in phase["tasks"]:
            left, width = bar_geometry(task["start"], task["end"], origin, total)
            parts.append('<div class="tl-row tl-task"><div class="tl-label" title="%s">%s</div><div class="tl-track">'
                         '<div class="bar st-%s" style="left:%.3f%%;width:%.3f%%"></div></div>'
                         '<div class="tl-dur">%s</div></div>' % (
                             esc(task["name"]), esc(task["name"]), esc(task["status"]), left, width,
                             esc(human_duration(task["duration"]))))
        parts.append("</details>")
    parts.append("</div></section>")
    return "\n".join(parts)


def render_health(health):
    if not health:
        return ""
    parts = ['<section id="health"><h2>Health</h2>']
    for host, report in sorted(health.items()):
        counts = report.get("counts") or {}
        parts.append('<h3>%s %s <span class="sub">%s ok, %s warning, %s critical%s</span></h3>' % (
            esc(host), _badge(report["severity"], _sev_class(report["severity"])),
            esc(counts.get("ok", 0)), esc(counts.get("warning", 0)), esc(counts.get("critical", 0)),
            esc(" - fails on %s" % report["fail_on"]) if report.get("fail_on") else ""))
        parts.append('<table class="health-table" data-host="%s"><thead><tr><th>severity</th><th>check</th>'
                     '<th>message</th></tr></thead><tbody>' % esc(host))
        for check in report["checks"]:
            severity = str(check.get("severity") or "CRITICAL").upper()
            parts.append('<tr class="check %s"><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                _sev_class(severity), _badge(severity, _sev_class(severity)), esc(check.get("name")),
                esc(check.get("message"))))
        parts.append("</tbody></table>")
    parts.append("</section>")
    return "\n".join(parts)


def render_trend(trend, width=560, height=120):
    """A small inline SVG bar chart of backup sizes, oldest left; the run's own backup highlighted."""
    if not trend:
        return '<p class="sub">No earlier backups in the catalog.</p>'
    chart_h = height - 30
    slot = width / float(len(trend))
    bar_w = max(4.0, min(40.0, slot * 0.6))
    heights = scaled_heights([row["size_bytes"] for row in trend], chart_h - 14)
    parts = ['<svg class="trend-chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
             'role="img" aria-label="backup sizes, oldest first">' % (width, height, width, height),
             '<line x1="0" y1="%d" x2="%d" y2="%d" stroke="#d8dee4"/>' % (chart_h, width, chart_h)]
    for index, (row, bar_h) in enumerate(zip(trend, heights)):
        x = index * slot + (slot - bar_w) / 2
        colour = "#2f5fb3" if row["current"] else ("#1a7f37" if row.get("verified") else (
            "#b8c0c8" if row.get("verified") is None else "#c62828"))
        parts.append('<rect class="trend-bar%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s">'
                     '<title>%s: %s%s</title></rect>' % (
                         " current" if row["current"] else "", x, chart_h - bar_h, bar_w, max(bar_h, 1.0), colour,
                         esc(row["id"]), esc(human_bytes(row["size_bytes"])),
                         esc(", verified" if row.get("verified") else (", not verified" if row.get("verified") is False
                                                                         else ""))))
        parts.append('<text class="lbl" x="%.1f" y="%.1f" text-anchor="middle">%s</text>' % (
            x + bar_w / 2, chart_h - bar_h - 3, esc(human_bytes(row["size_bytes"]))))
        label = _short_time(row.get("started_at")) or str(row.get("id") or "")[-12:]
        parts.append('<text class="lbl" x="%.1f" y="%d" text-anchor="middle">%s</text>' % (
            x + bar_w / 2, height - 10, esc(label)))
    parts.append("</svg>")
    return "\n".join(parts)


def _short_time(text):
    """'2026-11-23T14:52:47.533Z' -> '11-23 14:52' (UTC, as recorded)."""
    match = re.match(r"^\d{4}-(\d\d-\d\d)[T ](\d\d:\d\d)", str(text or ""))
    return "%s %s" % match.groups() if match else ""


TREND_LEGEND = ('<div class="sub legend"><span class="key" style="background:#2f5fb3"></span>this run '
                '<span class="key" style="background:#1a7f37"></span>verified '
                '<span class="key" style="background:#c62828"></span>verification failed '
                '<span class="key" style="background:#b8c0c8"></span>not verified</div>')


def render_backups(backups, rpo=None):
    if not backups:
        return ""
    parts = ['<section id="backup"><h2>Backup</h2>']
    for host, entry in sorted(backups.items()):
        parts.append("<h3>%s</h3>" % esc(host))
        backup = entry.get("backup")
        verification = entry.get("verification")
        if entry.get("skipped_reason"):
            parts.append('<div class="callout">%s</div>' % esc(entry["skipped_reason"]))
        if backup:
            if verification is None or verification.get("skipped"):
                verdict = _badge("not verified (skipped)", "verified-skipped")
            elif verification.get("verified"):
                verdict = _badge("verified", "verified-yes")
            else:
                verdict = _badge("verification FAILED", "verified-no")
            parts.append('<div class="facts" id="backup-facts">')
            parts.append(_fact("backup id", backup.get("backup_id")))
            parts.append(_fact("size" if not backup.get("planned_only") else "database size (planned)",
                               human_bytes(backup.get("size_bytes") if not backup.get("planned_only")
                                           else backup.get("database_size_bytes"))))
            parts.append(_fact("duration", human_duration(backup.get("duration_seconds"))))
            parts.append(_fact("verification", verdict, raw=True))
            if verification and verification.get("duration_seconds") is not None:
                parts.append(_fact("verification took", human_duration(verification.get("duration_seconds"))))
            if backup.get("throughput_mib_per_second") is not None:
                parts.append(_fact("throughput", "%s MiB/s" % backup["throughput_mib_per_second"]))
            if entry.get("retention") is not None:
                parts.append(_fact("retention deleted", len(entry["retention"].get("deleted") or [])))
            parts.append("</div>")
            for difference in (verification or {}).get("differences") or []:
                parts.append('<div class="callout bad mono">%s</div>' % esc(difference))
        age = entry.get("latest_verified_age")
        if rpo is not None:
            check = rpo_check(age, rpo)
            parts.append('<div class="callout %s" id="rpo">%s</div>' % (
                "bad" if check["exceeded"] else "good", esc(check["message"])))
        elif age == 0.0:
            parts.append('<div class="callout good" id="rpo">newest verified backup: the one this run took</div>')
        elif age is not None:
            parts.append('<div class="callout" id="rpo">newest verified backup: %s old</div>' % esc(human_duration(age)))
        parts.append('<h3>Size of the last %d backup(s)</h3><div class="trend" id="backup-trend">%s</div>' % (
            len(entry.get("trend") or []), render_trend(entry.get("trend")) + TREND_LEGEND))
    parts.append("</section>")
    return "\n".join(parts)


def render_maintenance(maintenance):
    if not maintenance:
        return ""
    parts = ['<section id="maintenance"><h2>Maintenance</h2>']
    for host, result in sorted(maintenance.items()):
        status = str(result.get("status") or "-")
        css = {"ok": "status-successful", "rolled_back": "status-failed", "skipped": "status-canceled"}.get(
            status, "status-canceled")
        parts.append("<h3>%s %s</h3>" % (esc(host), _badge(status, css)))
        parts.append('<div class="facts">')
        parts.append(_fact("level", result.get("level") or "-"))
        parts.append(_fact("space reclaimed", result.get("reclaimed") or human_bytes(result.get("reclaimed_bytes"))))
        parts.append(_fact("pre-maintenance backup", result.get("backup_id") or "none"))
        parts.append(_fact("maintenance mode", result.get("maintenance_mode") or "-"))
        if result.get("deadline"):
            parts.append(_fact("window deadline", "%s%s" % (result["deadline"], " (reached)" if result.get(
                "deadline_reached") else "")))
        if result.get("health_after"):
            parts.append(_fact("health after", result["health_after"]))
        parts.append(_fact("duration", human_duration(result.get("duration_seconds"))))
        parts.append("</div>")
        done = [item for item in result.get("done") or [] if isinstance(item, dict)]
        parts.append('<table class="maintenance-done"><thead><tr><th>task</th><th>changed</th><th>what</th>'
                     '<th class="num">reclaimed</th><th class="num">duration</th></tr></thead><tbody>')
        for item in done:
            what = []
            if item.get("tables"):
                what.append("%d table(s): %s" % (len(item["tables"]), ", ".join(str(t) for t in item["tables"][:8])
                                                + (" ..." if len(item["tables"]) > 8 else "")))
            for key in ("files_removed", "images_removed", "containers_removed", "tables_skipped"):
                if item.get(key):
                    what.append("%s %s" % (key.replace("_", " "), item[key]))
            if item.get("services"):
                what.append("services %s" % ", ".join(str(s) for s in item["services"]))
            parts.append('<tr><td>%s</td><td>%s</td><td>%s</td><td class="num">%s</td><td class="num">%s</td></tr>' % (
                esc(item.get("name")), "yes" if item.get("changed") else "no", esc("; ".join(what) or "-"),
                esc(item.get("reclaimed") or human_bytes(item.get("reclaimed_bytes"))),
                esc(human_duration(item.get("duration_seconds")) if item.get("duration_seconds") is not None else "-")))
        if not done:
            parts.append('<tr><td colspan="5" class="sub">nothing was done</td></tr>')
        parts.append("</tbody></table>")
        for item in result.get("skipped") or []:
            parts.append('<div class="callout warn">skipped %s: %s</div>' % (
                esc(item.get("name") if isinstance(item, dict) else item),
                esc(item.get("reason") if isinstance(item, dict) else "")))
        for warning in result.get("warnings") or []:
            parts.append('<div class="callout warn">%s</div>' % esc(warning))
        failed = result.get("failed")
        rollback = result.get("rollback")
        if failed or rollback:
            failed = failed if isinstance(failed, dict) else {}
            rollback = rollback if isinstance(rollback, dict) else {}
            lines = ["<strong>Rolled back</strong> after step %s (task &quot;%s&quot;): %s" % (
                esc(failed.get("step")), esc(failed.get("task")), esc(failed.get("message")))]
            lines.append("images restored: %s" % esc(", ".join(rollback.get("images_restored") or []) or "none"))
            if rollback.get("images_failed"):
                lines.append("images NOT restored: %s" % esc(", ".join(rollback["images_failed"])))
            if rollback.get("database_restored"):
                lines.append("database restored from backup %s" % esc(rollback.get("backup_id")))
            else:
                lines.append("database not restored: %s" % esc(
                    rollback.get("database_restore_error") or rollback.get("database_restore_reason") or "-"))
            parts.append('<div class="callout bad rollback" id="rollback">%s</div>' % "<br>".join(lines))
    parts.append("</section>")
    return "\n".join(parts)


def render_drill(drills):
    """The drill view: verdict, backup, measured RTO with its phases as bars, each check, what was torn down."""
    if not drills:
        return ""
    parts = ['<section id="drill"><h2>Restore drill</h2>']
    for host, result in sorted(drills.items()):
        verdict = str(result.get("drill") or result.get("status") or "-")
        css = {"passed": "status-successful", "failed": "status-failed"}.get(verdict, "status-canceled")
        parts.append("<h3>%s %s</h3>" % (esc(host), _badge(verdict, css)))
        backup = result.get("backup") or {}
        parts.append('<div class="facts">')
        parts.append(_fact("backup", "%s %s" % (backup.get("kind") or "", backup.get("id") or "-")))
        parts.append(_fact("drill project", result.get("project") or "-"))
        parts.append(_fact("measured RTO", human_duration(result.get("rto_seconds"))))
        if result.get("rto_objective_seconds") is not None:
            parts.append(_fact("RTO objective", "%s (%s)" % (human_duration(result["rto_objective_seconds"]),
                                                              "met" if result.get("rto_met") else "NOT met")))
        trend = [human_duration(value) for value in result.get("rto_trend") or [] if value is not None]
        parts.append(_fact("RTO trend (newest first)", ", ".join(trend) or "-"))
        parts.append("</div>")
        phases = result.get("phase_seconds") or {}
        total = sum(value for value in phases.values() if value) or 0
        if total:
            parts.append('<div class="timeline" id="drill-phases">')
            origin = 0.0
            for name in ("fetch", "restore", "start", "checks"):
                if phases.get(name) is None:
                    continue
                left, width = bar_geometry(origin, origin + phases[name], 0.0, total)
                origin += phases[name]
                parts.append('<div class="tl-row tl-phase"><div class="tl-label">%s</div><div class="tl-track">'
                             '<div class="bar" style="left:%s%%;width:%s%%"></div></div><div class="tl-dur">%s</div>'
                             '</div>' % (esc(name), left, width, esc(human_duration(phases[name]))))
            parts.append("</div>")
        parts.append('<table class="drill-checks"><thead><tr><th>check</th><th>kind</th><th>result</th><th>detail</th>'
                     '</tr></thead><tbody>')
        for item in result.get("checks") or []:
            if not isinstance(item, dict):
                continue
            parts.append('<tr class="%s"><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                "" if item.get("ok") else "sev-critical", esc(item.get("name")), esc(item.get("kind")),
                "ok" if item.get("ok") else "FAILED", esc(item.get("message"))))
        if not result.get("checks"):
            parts.append('<tr><td colspan="4" class="sub">no check ran</td></tr>')
        parts.append("</tbody></table>")
        if result.get("error"):
            parts.append('<div class="callout bad">%s</div>' % esc(result["error"]))
        for url in result.get("unmapped_urls") or []:
            parts.append('<div class="callout warn">not checked in the drill: %s</div>' % esc(url))
        if result.get("kept"):
            parts.append('<div class="callout warn">kept running as %s; remove it with stackops drill --teardown</div>'
                         % esc(result.get("project")))
    parts.append("</section>")
    return "\n".join(parts)


def render_status(statuses):
    """The status view: the problems first, then one row per thing that matters for recovery."""
    if not statuses:
        return ""
    parts = ['<section id="status"><h2>Recoverability</h2>']
    for host, status in sorted(statuses.items()):
        problems = status.get("problems") or []
        parts.append("<h3>%s %s</h3>" % (esc(host), _badge("ok" if not problems else "%d problem(s)" % len(problems),
                                                           "status-successful" if not problems else "status-failed")))
        for problem in problems:
            parts.append('<div class="callout bad">%s</div>' % esc(problem))
        rows = []
        for row in status.get("services") or []:
            rows.append(("service %s" % row.get("service"), row.get("state"), None, row.get("ok")))
        newest = (status.get("logical") or {}).get("newest_verified") or {}
        rows.append(("logical backup", newest.get("id") or "none verified", newest.get("age_seconds"), bool(newest)))
        pitr = status.get("pitr") or {}
        if pitr.get("enabled"):
            rows.append(("PITR window", "%s .. %s, receiver %s" % (
                pitr.get("earliest_recoverable"), pitr.get("latest_recoverable"),
                "alive" if pitr.get("receiver_alive") else "down"), pitr.get("latest_recoverable_age_seconds"),
                bool(pitr.get("receiver_alive"))))
        for copy in status.get("offsite") or []:
            rows.append(("off-site %s" % copy.get("target"), copy.get("newest_verified") or "no verified copy",
                         copy.get("age_seconds"), copy.get("age_seconds") is not None))
        last = (status.get("drills") or {}).get("last") or {}
        rows.append(("restore drill", "%s %s" % (last.get("id") or "none", last.get("status") or ""),
                     (status.get("drills") or {}).get("last_age_seconds"), last.get("status") == "passed"))
        for schedule in status.get("schedules") or []:
            run = schedule.get("last_run") or {}
            rows.append(("schedule %s" % schedule.get("name"), "last run %s" % (run.get("status") or "none yet"),
                         None, run.get("status") in (None, "successful")))
        parts.append('<table class="status"><thead><tr><th>what</th><th>detail</th><th class="num">age</th>'
                     '<th></th></tr></thead><tbody>')
        for what, detail, age, ok in rows:
            parts.append('<tr class="%s"><td>%s</td><td>%s</td><td class="num">%s</td><td>%s</td></tr>' % (
                "" if ok else "sev-critical", esc(what), esc(detail), esc(human_duration(age) if age is not None else ""),
                "ok" if ok else "FAIL"))
        parts.append("</tbody></table>")
    parts.append("</section>")
    return "\n".join(parts)


def render_details(summary):
    extra = summary.get("extra_vars") or {}
    result = summary.get("result") or {}
    parts = ['<section id="details"><h2>Details</h2>']
    parts.append("<h3>extra vars</h3><pre>%s</pre>" % esc(json.dumps(extra, indent=2, sort_keys=True, default=str)))
    if result:
        parts.append("<details><summary><h3>stackops_result (click to expand)</h3></summary><pre>%s</pre></details>"
                     % esc(json.dumps(result, indent=2, sort_keys=True, default=str)))
    parts.append("</section>")
    return "\n".join(parts)


def render_html(model, rpo_seconds=None):
    summary = model["summary"]
    title = "stackops %s %s - %s" % (summary.get("procedure") or "run", summary.get("status") or "",
                                     summary.get("run_id") or "")
    body = [render_header(summary), render_timeline(model["timeline"]), render_health(model["health"]),
            render_backups(model["backups"], rpo_seconds), render_maintenance(model["maintenance"]),
            render_drill(model.get("drill")), render_status(model.get("status")), render_details(summary),
            '<footer>generated %s by stackops %s from %s</footer>' % (
                esc(model.get("generated_at")), esc(__version__), esc(summary.get("artifacts") or "the run history"))]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">"
            "<title>%s</title><style>%s</style></head>\n<body>\n%s\n</body></html>\n" % (
                esc(title), CSS, "\n".join(part for part in body if part)))


def write_report(run_dir, output=None, rpo_seconds=None, trend_length=TREND_LENGTH):
    """Render the report of the run in run_dir; returns the path written (default <run_dir>/report.html)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError("no run directory %s" % run_dir)
    summary, events = load_run(run_dir)
    page = render_html(build_model(summary, events, trend_length), rpo_seconds)
    target = Path(output) if output else run_dir / REPORT_NAME
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(target)
    return target
