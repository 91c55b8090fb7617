# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shell-free pipelines of external tools (pg_dump | zstd, zstd -dc | pg_restore) and how to name their failures,
and a stream fanned out to a second reader while it is written (a dump into its own trial restore)."""

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
    """The stream a LiveFeed fans out stopped with an error (the dump failed)."""


class HeadTooLarge(Exception):
    """A reader from the start needs more than a LiveFeed may hold while the stream goes on."""


class LiveFeed(object):
    """A stream while it is written (a dump on its way to its file), for a second reader.

    The writer ``put()``s every chunk. Readers start at the first byte: ``replay`` readers (pg_restore reading the
    table of contents) need only the head of the stream, the one ``consume`` reader (the data pass) reads all of it,
    once. Every chunk is held until the consuming reader starts, and after that until it has taken it. The writer
    waits while ``limit`` bytes are held: a slower reader sets the pace, memory stays bounded. ``detach()`` (the
    reader side gave up or finished) lets the writer go on alone.
    """

    def __init__(self, limit=64 * CHUNK):
        self.limit = limit
        self.cond = threading.Condition()
        self.chunks = []
        self.first = 0          # index of chunks[0] in the whole stream
        self.held = 0
        self.consuming = False
        self.ended = False
        self.error = None
        self.detached = False
        self.total = 0

    # ------------------------------------------------------------ the writer
    def put(self, chunk):
        with self.cond:
            while self.held >= self.limit and not self.detached:
                self.cond.wait()
            if self.detached:
                return
            self.chunks.append(chunk)
            self.held += len(chunk)
            self.total += len(chunk)
            self.cond.notify_all()

    def end(self, error=None):
        with self.cond:
            if self.ended:
                return
            self.ended = True
            self.error = error
            self.cond.notify_all()

    def wait_ended(self):
        """Block until the writer is done; raise FeedFailed if it failed."""
        with self.cond:
            while not self.ended:
                self.cond.wait()
            if self.error is not None:
                raise FeedFailed(str(self.error))

    # ------------------------------------------------------------ the reader side
    def detach(self):
        with self.cond:
            self.detached = True
            self.chunks, self.held = [], 0
            self.cond.notify_all()

    def reader(self, consume=False):
        """A ``feed`` for Pipeline: the stream from its first byte (see the class)."""
        def chunks(wanted):
            with self.cond:
                if self.consuming or self.detached:
                    raise FeedFailed('the stream was already read through')
                if consume:
                    self.consuming = True
            index = 0
            while True:
                with self.cond:
                    if consume and index > self.first:
                        # What the consumer took is written on; the writer may go on.
                        drop = index - self.first
                        self.held -= sum(len(c) for c in self.chunks[:drop])
                        del self.chunks[:drop]
                        self.first = index
                        self.cond.notify_all()
                    while index >= self.first + len(self.chunks) and not self.ended and not self.detached:
                        if not wanted():
                            return
                        if not consume and self.held >= self.limit:
                            raise HeadTooLarge('the head of the stream a reader needs is larger than the %d MiB held '
                                               'for it' % (self.limit // CHUNK))
                        self.cond.wait(0.2)
                    if self.detached:
                        raise FeedFailed('the stream was detached from its readers')
                    if self.error is not None:
                        raise FeedFailed(str(self.error))
                    if index >= self.first + len(self.chunks):
                        return  # the end of the stream
                    chunk = self.chunks[index - self.first]
                index += 1
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
