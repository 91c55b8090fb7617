# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shell-free pipelines of external tools (pg_dump | zstd, zstd -dc | pg_restore) and how to name their failures,
and a file followed by a reader while it is written (a dump read by its own trial restore)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import subprocess
import tempfile
import threading

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

    Each stage's stderr goes to a temporary file so a failing stage can be named with its own words. With ``feed``
    (a callable that takes a ``wanted()`` test and returns an iterator of byte chunks) a thread writes the chunks to
    the first stage's stdin. It stops early, and sets ``cut``, once the last stage has ended: a pg_restore that has
    read the table of contents it needs does not read the rest.
    """

    def __init__(self, stages, env=None, read_output=True, feed=None):
        self.stages = [list(argv) for argv in stages]
        self.procs = []
        self.errs = []
        self.cut = False
        self.feed_error = None
        self.feeder = None
        previous = None
        try:
            for index, argv in enumerate(self.stages):
                last = index == len(self.stages) - 1
                err = tempfile.TemporaryFile()
                self.errs.append(err)
                stdout = subprocess.PIPE if (not last or read_output) else subprocess.DEVNULL
                if previous:
                    stdin = previous.stdout
                else:
                    stdin = subprocess.PIPE if feed is not None else subprocess.DEVNULL
                proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=err, env=env, close_fds=True)
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
        if feed is not None:
            widen_pipe(self.procs[0].stdin)
            self.feeder = threading.Thread(target=self._feed, args=(feed,), name='feed-%s' % self.stages[-1][0])
            self.feeder.daemon = True
            self.feeder.start()

    def _wanted(self):
        return self.procs[-1].poll() is None

    def _feed(self, feed):
        stdin = self.procs[0].stdin
        try:
            for chunk in feed(self._wanted):
                stdin.write(chunk)
                stdin.flush()  # a small last piece of the head must not wait in our buffer for more
            if not self._wanted():
                self.cut = True
        except (IOError, OSError):
            self.cut = True  # the first stage stopped reading (it ended, or the last stage did)
        except Exception as exc:  # the feed failed: reported by wait() through feed_error
            self.feed_error = exc
            self.kill()
        finally:
            try:
                stdin.close()
            except (IOError, OSError):
                pass
        if self.cut:
            # The stages before the last one would only complain about an input we stopped giving them.
            for proc in self.procs[:-1]:
                if proc.poll() is None:
                    proc.kill()

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
        if self.feeder is not None:
            self.feeder.join()
        return results


class FeedFailed(Exception):
    """The file a GrowingFile follows stopped growing with an error (the dump failed)."""


class GrowingFile(object):
    """A file while it is written (a dump on its way to its set), for readers that follow the writer.

    The writer says how many bytes the file holds (``wrote()``) and when it is complete (``end()``). A reader starts
    at the first byte, reads what is there and waits for more until the end: the trial restore of a verified backup
    reads the very bytes stored, from the page cache, while the dump goes on at its own pace. Nothing is held in
    memory, so a slower reader never holds the dump back, and a reader of the head (a table of contents) can read
    as far as it needs.
    """

    def __init__(self, path):
        self.path = path
        self.cond = threading.Condition()
        self.size = 0
        self.ended = False
        self.error = None

    def wrote(self, size):
        with self.cond:
            self.size = size
            self.cond.notify_all()

    def end(self, error=None):
        """The file is complete (or, with ``error``, will never be); only the first call counts."""
        with self.cond:
            if self.ended:
                return
            self.ended = True
            self.error = error
            self.cond.notify_all()

    def wait_ended(self):
        """Block until the file is complete; raise FeedFailed if the writer failed."""
        with self.cond:
            while not self.ended:
                self.cond.wait()
            if self.error is not None:
                raise FeedFailed(str(self.error))

    def reader(self):
        """A ``feed`` for Pipeline: the file from its first byte to its end, as it is written."""
        def chunks(wanted):
            offset = 0
            with self.cond:
                while self.size == 0 and not self.ended and wanted():
                    self.cond.wait(0.2)  # the writer creates the file with its first bytes
                if self.error is not None:
                    raise FeedFailed(str(self.error))
                if self.size == 0:
                    return
            with open(self.path, 'rb') as handle:
                while wanted():
                    with self.cond:
                        while offset >= self.size and not self.ended and wanted():
                            self.cond.wait(0.2)
                        if self.error is not None:
                            raise FeedFailed(str(self.error))
                        available = self.size - offset
                    if available <= 0:
                        return  # the end of the file, or nobody reads any more
                    chunk = handle.read(min(CHUNK, available))
                    if not chunk:
                        raise FeedFailed('%s is shorter than the %d bytes written to it' % (self.path, self.size))
                    offset += len(chunk)
                    yield chunk
        return chunks


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
