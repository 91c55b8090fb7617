"""Running one timed command: wall time, exit status, and the peak memory of its process tree.

Memory method: a sampler thread walks /proc every BENCH_SAMPLE_MS (default 100 ms), collects the
command's whole process tree (every descendant, found through the parent pid in /proc/<pid>/stat)
and sums the proportional set size (Pss from /proc/<pid>/smaps_rollup) of its members. The peak of
that sum is reported. PSS divides shared pages (libraries, fork copy-on-write pages of ansible
workers) among the processes sharing them, so forks are not counted many times over as an RSS sum
would. The PostgreSQL server's own backends are not part of the tree (the server is the same for
every contender); neither are processes that docker runs inside containers.
"""
import os
import shlex
import statistics
import subprocess
import threading
import time

SAMPLE_SECONDS = float(os.environ.get("BENCH_SAMPLE_MS", "100")) / 1000.0


def _children_map():
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the ppid is the 2nd field after the last ')'.
        rest = stat[stat.rfind(b")") + 2:].split()
        if len(rest) > 1:
            children.setdefault(int(rest[1]), []).append(int(entry))
    return children


def tree_pids(root):
    children = _children_map()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, ()))
    return pids


def _pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid, "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeMemorySampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self.peak_procs = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            pids = tree_pids(self.pid)
            total = sum(_pss_kib(pid) for pid in pids)
            self.samples += 1
            if total > self.peak_kib:
                self.peak_kib = total
            self.peak_procs = max(self.peak_procs, len(pids))
            self._halt.wait(SAMPLE_SECONDS)

    def stop(self):
        self._halt.set()
        self.join(timeout=5)


class CommandFailed(RuntimeError):
    def __init__(self, argv, rc, output):
        self.argv, self.rc, self.output = argv, rc, output
        super().__init__("command failed (rc %s): %s\n%s" % (rc, display(argv), output[-3000:]))


def display(argv):
    if isinstance(argv, str):
        return argv
    return " ".join(shlex.quote(str(a)) for a in argv)


def run_timed(argv, env=None, cwd=None, memory=True, timeout=3600, check=True, shell=False, log=None):
    """Run argv (or a bash pipeline with shell=True, pipefail on); returns a dict of measurements."""
    if shell:
        argv = ["bash", "-c", "set -euo pipefail; " + argv]
    run_env = dict(os.environ)
    run_env.update(env or {})
    out = open(log, "wb") if log else subprocess.PIPE
    started = time.monotonic()
    proc = subprocess.Popen([str(a) for a in argv], env=run_env, cwd=cwd, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    sampler = TreeMemorySampler(proc.pid) if memory else None
    if sampler:
        sampler.start()
    try:
        output, unused = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        output, unused = proc.communicate()
        raise
    finally:
        wall = time.monotonic() - started
        if sampler:
            sampler.stop()
        if log:
            out.close()
    if log:
        with open(log, "rb") as handle:
            output = handle.read()
    text = (output or b"").decode(errors="replace")
    if check and proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, text)
    return {"wall_s": wall, "rc": proc.returncode, "output": text,
            "peak_pss_mib": (sampler.peak_kib / 1024.0) if sampler else None,
            "peak_procs": sampler.peak_procs if sampler else None}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
