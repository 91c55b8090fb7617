"""Machine facts, result tables (terminal and Markdown), JSON results and PNG charts."""
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[1]
REPO = BENCH_DIR.parent
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR", BENCH_DIR / "results"))
README = BENCH_DIR / "README.md"
PERFORMANCE_DOC = REPO / "docs" / "performance.md"
PROJECT_README = REPO / "README.md"
PG_BINDIR = Path(os.environ.get("STACKOPS_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
NOT_AVAILABLE = "not available"


def _first_line(argv):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr or "").strip()
    return text.splitlines()[0].strip() if text else None


def _meminfo():
    facts = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, unused, value = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                facts[key] = round(int(value.split()[0]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"total_gib": facts.get("MemTotal"), "available_gib_at_start": facts.get("MemAvailable")}


def _disk(path):
    facts = {"path": str(path)}
    try:
        usage = shutil.disk_usage(path)
        facts.update(total_gib=round(usage.total / 2 ** 30, 1), free_gib=round(usage.free / 2 ** 30, 1))
        device = _first_line(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "--target", str(path)])
        facts["device"] = device
        if device:
            name = Path(device.split()[0]).name.rstrip("0123456789") or Path(device.split()[0]).name
            rotational = Path("/sys/block/%s/queue/rotational" % name)
            if rotational.exists():
                facts["rotational"] = rotational.read_text().strip() == "1"
    except OSError:
        pass
    return facts


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git():
    head = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True,
                           text=True, check=False).stdout.strip() != ""
    return {"commit": head, "dirty_worktree": dirty}


def _python_package(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001 - a missing package is reported as None
        return None


def machine_info(workdir=None):
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory": _meminfo(),
        "disk": _disk(workdir or REPO),
        "kernel": platform.release(),
        "os": _first_line(["bash", "-c", ". /etc/os-release && echo \"$PRETTY_NAME\""]),
        "loadavg_at_start": list(os.getloadavg()),
        "versions": {
            "python": platform.python_version(),
            "postgres": _first_line([str(PG_BINDIR / "postgres"), "--version"]),
            "pg_dump": _first_line([str(PG_BINDIR / "pg_dump"), "--version"]),
            "zstd": _first_line(["zstd", "--version"]),
            "pigz": _first_line(["pigz", "--version"]),
            "gzip": _first_line(["gzip", "--version"]),
            "pgbackrest": _first_line(["pgbackrest", "version"]),
            "docker": _first_line(["docker", "version", "--format", "{{.Server.Version}}"]),
            "docker_compose": _first_line(["docker", "compose", "version", "--short"]),
            "ansible_core": _python_package("ansible-core"),
            "ansible_runner": _python_package("ansible-runner"),
            "stackops": _python_package("stackops"),
        },
        "git": _git(),
    }


# ------------------------------------------------------------------ formatting

def fmt(value, spec="%.1f", unit=""):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return (spec % value) + unit


def render_text_table(columns, rows):
    """columns: list of (key, header); rows: list of dicts already formatted as strings."""
    widths = [max(len(header), *(len(str(row.get(key, ""))) for row in rows)) if rows else len(header)
              for key, header in columns]
    lines = ["  ".join(header.ljust(width) for (unused, header), width in zip(columns, widths))]
    lines.append("  ".join("-" * width for width in widths))
    for row in rows:
        lines.append("  ".join(str(row.get(key, "")).ljust(width) for (key, unused), width in zip(columns, widths)))
    return "\n".join(lines)


def render_markdown_table(columns, rows):
    lines = ["| " + " | ".join(header for unused, header in columns) + " |",
             "| " + " | ".join("---" for unused in columns) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(key, "")).replace("|", "\\|") for key, unused in columns) + " |")
    return "\n".join(lines)


def target_line(target):
    verdict = target["verdict"].upper()
    return "%-4s %s (%s)" % (verdict if verdict != "N/A" else "n/a", target["name"], target["detail"])


def print_report(title, tables, targets, notes=()):
    print()
    print("=" * len(title))
    print(title)
    print("=" * len(title))
    for heading, columns, rows in tables:
        if heading:
            print("\n" + heading)
        print(render_text_table(columns, rows))
    if targets:
        print("\nTargets (reported, not asserted):")
        for target in targets:
            print("  " + target_line(target))
    for note in notes:
        print("note: " + note)
    sys.stdout.flush()


def markdown_section(title, tables, targets, notes=(), when=None):
    parts = ["### %s" % title]
    if when:
        parts.append("_measured %s_" % when)
    for heading, columns, rows in tables:
        if heading:
            parts.append("**%s**" % heading)
        parts.append(render_markdown_table(columns, rows))
    if targets:
        parts.append("Targets (reported, not asserted):\n\n" + "\n".join(
            "- **%s** %s: %s" % (t["verdict"].upper(), t["name"], t["detail"]) for t in targets))
    for note in notes:
        parts.append("_Note: %s_" % note)
    return "\n\n".join(parts) + "\n"


def update_marked_block(path, name, text):
    """Replace the text between <!-- bench:NAME:start --> and <!-- bench:NAME:end --> in path."""
    path = Path(path)
    if not path.exists():
        return False
    start, end = "<!-- bench:%s:start -->" % name, "<!-- bench:%s:end -->" % name
    content = path.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(content):
        return False
    path.write_text(pattern.sub(lambda _: start + "\n" + text.rstrip() + "\n" + end, content))
    return True


def target(name, ok, detail):
    verdict = "n/a" if ok is None else ("pass" if ok else "fail")
    return {"name": name, "verdict": verdict, "detail": detail}


def write_result(name, document):
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / ("%s.json" % name)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------ charts

def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        print("note: matplotlib missing (pip install -r benchmarks/requirements.txt): no PNG chart", file=sys.stderr)
        return None


KIND_LABELS = {"seed": "seeds' way", "raw": "raw tools", "physical": "physical (reference)", "stackops": "stackops",
               "reference": "reference"}


def _legend(ax, kinds, colours):
    from matplotlib.patches import Patch
    seen = [k for k in KIND_LABELS if k in set(kinds)]
    if len(seen) > 1:
        ax.legend(handles=[Patch(color=colours.get(k, "#4f81bd"), label=KIND_LABELS[k]) for k in seen],
                  fontsize=7, loc="lower right")


def bar_chart(path, title, bars, xlabel="median wall time (s)"):
    """bars: list of (label, value or None, colour key). None is drawn as 'not available'."""
    plt = _pyplot()
    if plt is None:
        return None
    colours = {"seed": "#c0504d", "raw": "#4f81bd", "physical": "#8064a2", "stackops": "#2e8b57",
               "reference": "#7f7f7f"}
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(bars) + 1.6))
    labels = [label for label, unused, unused2 in bars][::-1]
    values = [value or 0 for unused, value, unused2 in bars][::-1]
    kinds = [kind for unused, unused2, kind in bars][::-1]
    ax.barh(labels, values, color=[colours.get(kind, "#4f81bd") for kind in kinds])
    top = max(values) if values and max(values) > 0 else 1
    for index, (value, (unused, raw, unused2)) in enumerate(zip(values, bars[::-1])):
        ax.text(value + top * 0.01, index, NOT_AVAILABLE if raw is None else "%.1f" % raw, va="center", fontsize=8)
    ax.set_xlim(0, top * 1.18)
    _legend(ax, kinds, colours)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def grouped_charts(path, title, panels):
    """panels: list of (subtitle, bars, xlabel) drawn one under the other."""
    plt = _pyplot()
    if plt is None:
        return None
    colours = {"seed": "#c0504d", "raw": "#4f81bd", "physical": "#8064a2", "stackops": "#2e8b57",
               "reference": "#7f7f7f"}
    heights = [0.42 * len(bars) + 1.0 for unused, bars, unused2 in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, sum(heights) + 0.6),
                             gridspec_kw={"height_ratios": heights})
    if len(panels) == 1:
        axes = [axes]
    for ax, (subtitle, bars, xlabel) in zip(axes, panels):
        labels = [label for label, unused, unused2 in bars][::-1]
        raw = [value for unused, value, unused2 in bars][::-1]
        values = [value or 0 for value in raw]
        ax.barh(labels, values, color=[colours.get(kind, "#4f81bd") for unused, unused2, kind in bars][::-1])
        top = max(values) if values and max(values) > 0 else 1
        for index, (value, original) in enumerate(zip(values, raw)):
            ax.text(value + top * 0.01, index, NOT_AVAILABLE if original is None else "%.1f" % original,
                    va="center", fontsize=8)
        ax.set_xlim(0, top * 1.2)
        _legend(ax, [kind for unused, unused2, kind in bars], colours)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_title(subtitle, fontsize=9)
        ax.tick_params(labelsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def line_chart(path, title, series, xlabel, ylabel):
    """series: list of (label, [(x, y or None), ...])."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, points in series:
        xs = [x for x, y in points if y is not None]
        ys = [y for x, y in points if y is not None]
        ax.plot(xs, ys, marker="o", label=label)
        for x, y in zip(xs, ys):
            ax.annotate("%.1f" % y, (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ticks = sorted({x for unused, points in series for x, unused2 in points})
    if ticks:
        ax.set_xticks(ticks)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
