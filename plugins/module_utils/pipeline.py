# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shell-free pipelines of external tools (pg_dump | zstd, zstd -dc | pg_restore) and how to name their failures."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import subprocess
import tempfile

CHUNK = 1024 * 1024
F_SETPIPE_SZ = 1031  # Linux fcntl: pipe capacity


def widen_pipe(handle):
    """Give a pipe CHUNK bytes of buffer instead of 64 KiB, so the processes on both ends (a compressor and our
    copy-and-hash loop) work concurrently instead of taking turns. Best effort: the default still works."""
    try:
        fcntl.fcntl(handle.fileno(), F_SETPIPE_SZ, CHUNK)
    except (IOError, OSError, ValueError):
        pass


class Pipeline(object):
    """``stages`` (argv lists) connected stdout to stdin; the last stdout is ours to read (or discarded).

    Each stage's stderr goes to a temporary file so a failing stage can be named with its own words.
    """

    def __init__(self, stages, env=None, read_output=True):
        self.stages = [list(argv) for argv in stages]
        self.procs = []
        self.errs = []
        previous = None
        try:
            for index, argv in enumerate(self.stages):
                last = index == len(self.stages) - 1
                err = tempfile.TemporaryFile()
                self.errs.append(err)
                stdout = subprocess.PIPE if (not last or read_output) else subprocess.DEVNULL
                proc = subprocess.Popen(argv, stdin=previous.stdout if previous else subprocess.DEVNULL,
                                        stdout=stdout, stderr=err, env=env, close_fds=True)
                if previous:
                    previous.stdout.close()  # so the producer gets SIGPIPE if the consumer dies
                if proc.stdout is not None:
                    widen_pipe(proc.stdout)
                self.procs.append(proc)
                previous = proc
        except Exception:
            self.kill()
            self.wait()
            raise
        self.stdout = previous.stdout if read_output else None

    def kill(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()

    def wait(self):
        """[(argv, rc, stderr)] for every stage, after all of them ended."""
        if self.stdout is not None:
            self.stdout.close()
            self.stdout = None
        results = []
        for argv, proc, err in zip(self.stages, self.procs, self.errs):
            rc = proc.wait()
            err.seek(0)
            results.append((argv, rc, err.read().decode('utf-8', 'replace').strip()))
            err.close()
        self.errs = []
        return results


def first_failure(results):
    """The stage that failed first in a pipeline: the one with a real error, not the SIGPIPE it caused."""
    failed = [(argv, rc, err) for argv, rc, err in results if rc != 0]
    if not failed:
        return None
    for argv, rc, err in failed:
        if rc != -13 and rc != 141:
            return argv, rc, err
    return failed[0]


def describe_rc(rc):
    if rc < 0:
        return 'was killed by signal %d' % -rc
    if rc in (137, 143):
        return 'was killed (exit %d)' % rc
    return 'exited with %d' % rc
