# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore a whole custom-format dump as a stream, in parallel, without a decompressed copy on disk.

pg_backup writes dumps through a pipe (into zstd/lz4, or into Python to hash them), so their table of contents
has no data offsets. ``pg_restore -j`` can use such a dump only from a file, which for zstd/lz4 means first
decompressing it: a full extra write and read of the dump before any row is loaded. It then runs one COPY per
table, so the biggest table alone sets the pace. Instead we make three passes over the (decompressor's) output:

1. ``pg_restore --section=pre-data`` creates the schema (pg_restore reads only the table of contents).
2. ``pg_restore --section=data -f -`` turns the data into its SQL script while it is decompressed. We cut every
   ``COPY ... FROM stdin`` block at line boundaries and spread the pieces over ``jobs`` connections, each running
   its own COPY into the same table, so a single large table loads on every core. Session settings from the
   script are applied on every connection; anything else (sequence values, large objects) runs in order, after
   the COPYs before it finished.
3. Indexes and primary/unique/exclusion constraints are built by ``jobs`` pg_restore processes side by side,
   then everything else in post-data (foreign keys, triggers, rules, ...) by one, in the archive's order.

Anything in the script we do not understand raises StreamNotSupported before it reaches the database as
something other than what pg_restore meant; the caller then restores the classic way into a fresh database.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import os
import queue
import re
import tempfile
import threading
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.fault import fault_point
from ansible_collections.stackops.runbooks.plugins.module_utils.pipeline import (
    CHUNK, FeedFailed, Pipeline, describe_rc, first_failure)
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect, conninfo_dbname

# DOTALL: a quoted column name may hold a newline, so a COPY statement may span lines.
COPY_START = re.compile(br'^COPY (.+) FROM stdin;$', re.S)
END_OF_COPY = b'\\.\n'
# Statements that only change the session: every COPY connection needs them too (client_encoding above all,
# or COPY would read the rows in another encoding).
SESSION_STATEMENT = re.compile(br'^(SET [^;]+|SELECT pg_catalog\.set_config\([^;]*\));$')
# psql meta-commands pg_restore (15.14+, 16.10+, 17.6+) writes around a script to stop meta-command injection.
HARMLESS_META = (b'\\restrict ', b'\\unrestrict ')
# Post-data entries that only need their table and its rows: safe to build side by side.
PARALLEL_POST_DATA = re.compile(r'^\d+; \d+ \d+ (INDEX(?! ATTACH )|CONSTRAINT) ')
QUEUE_DEPTH = 4
SYNTAX_ERROR = '42601'


@contextlib.contextmanager
def timed(timings, phase):
    """Record the seconds the block took as ``timings[phase]``, also when it fails."""
    started = time.monotonic()
    try:
        yield
    finally:
        timings[phase] = round(time.monotonic() - started, 3)


class StreamNotSupported(Exception):
    """The dump holds something the streaming restore does not handle; restore it the classic way."""


class CopyAbandoned(Exception):
    """Told to stop in the middle of a COPY: the reader failed elsewhere."""


class StreamFailed(Exception):
    """The streaming restore failed; the message names the step and the database's or tool's error."""


def toc_entries(listing):
    """The entry lines of a ``pg_restore -l`` listing (comments dropped)."""
    return [line for line in listing.splitlines() if line.strip() and not line.startswith(';')]


def deliver(worker, message):
    """Put ``message`` in the worker's inbox, waiting while it is full; False if the worker has ended."""
    while worker.is_alive():
        try:
            worker.inbox.put(message, timeout=1)
            return True
        except queue.Full:
            continue
    return False


def raise_worker_error(workers):
    for worker in workers:
        if worker.error is not None:
            raise StreamFailed('loading rows on connection %s: %s' % (worker.name, worker.error))


def split_post_data(entries, jobs):
    """(``jobs`` lists of entries that may run side by side, the rest in archive order)."""
    parallel = [[] for dummy in range(max(jobs, 1))]
    serial = []
    index = 0
    for entry in entries:
        if PARALLEL_POST_DATA.match(entry):
            parallel[index % len(parallel)].append(entry)
            index += 1
        else:
            serial.append(entry)
    return [chunk for chunk in parallel if chunk], serial


class CopyWorker(threading.Thread):
    """One connection that runs what the reader hands it: session statements, and COPYs fed piece by piece."""

    def __init__(self, open_connection, name):
        super(CopyWorker, self).__init__(name=name)
        self.daemon = True
        self.open_connection = open_connection
        self.inbox = queue.Queue(maxsize=QUEUE_DEPTH)
        self.error = None
        self.rows = 0

    def run(self):
        conn = None
        try:
            conn = self.open_connection()
            while self.serve(conn):
                pass
        except CopyAbandoned:
            pass  # the reader gave up (and said so); leaving the COPY rolled it back
        except Exception as exc:  # reported by the reader, which stops feeding us
            self.error = exc
            self.drain()
        finally:
            if conn is not None:
                conn.close()

    def serve(self, conn):
        kind, payload = self.inbox.get()
        if kind == 'stop':
            return False
        if kind == 'sync':
            payload.set()
        elif kind == 'sql':
            conn.execute(payload)
        elif kind == 'copy':
            with conn.cursor() as cur:
                with cur.copy(payload) as copy:
                    while True:
                        kind, data = self.inbox.get()
                        if kind == 'data':
                            copy.write(data)
                        elif kind == 'end':
                            break
                        else:
                            raise CopyAbandoned()
                self.rows += max(cur.rowcount, 0)
        return True

    def drain(self):
        """After a failure: keep taking messages (so the reader never blocks on us) until told to stop."""
        while True:
            kind, payload = self.inbox.get()
            if kind == 'stop':
                return
            if kind == 'sync':
                payload.set()


class ScriptLoader(object):
    """Executes pg_restore's data-only SQL script, spreading each COPY block over the workers."""

    def __init__(self, control, workers):
        self.control = control
        self.workers = workers
        self.copy_statement = None
        self.copying = set()
        self.turn = 0
        self.pending = []

    def check_workers(self):
        raise_worker_error(self.workers)

    def send(self, worker, message):
        if not deliver(worker, message):
            raise StreamFailed('connection %s stopped unexpectedly' % worker.name)

    def barrier(self):
        """Wait until every worker finished everything it was given."""
        events = []
        for worker in self.workers:
            event = threading.Event()
            self.send(worker, ('sync', event))
            events.append(event)
        for event in events:
            event.wait()
        self.check_workers()

    def feed(self, buffer):
        """Consume what can be consumed of ``buffer``; return the rest (an incomplete line or end marker)."""
        pos = 0
        while pos < len(buffer):
            if self.copy_statement is not None:
                pos = self.feed_rows(buffer, pos)
                if self.copy_statement is not None:
                    break
                continue
            newline = buffer.find(b'\n', pos)
            if newline < 0:
                break
            self.take_line(buffer[pos:newline])
            pos = newline + 1
        return buffer[pos:]

    def feed_rows(self, buffer, pos):
        """Hand out the complete rows of the current COPY block from ``pos``; returns where the rest starts."""
        if buffer.startswith(END_OF_COPY, pos):
            self.end_copy()
            return pos + len(END_OF_COPY)
        marker = buffer.find(b'\n' + END_OF_COPY, pos)
        if marker >= 0:
            self.hand_out(buffer[pos:marker + 1])
            self.end_copy()
            return marker + 1 + len(END_OF_COPY)
        cut = buffer.rfind(b'\n', pos)
        if cut < 0:
            return pos
        self.hand_out(buffer[pos:cut + 1])
        return cut + 1

    def hand_out(self, rows):
        """Whole lines of one COPY block to the next worker in turn, which starts its COPY on first use."""
        worker = self.workers[self.turn % len(self.workers)]
        self.turn += 1
        if worker not in self.copying:
            self.send(worker, ('copy', self.copy_statement))
            self.copying.add(worker)
        self.send(worker, ('data', rows))
        self.check_workers()

    def end_copy(self):
        for worker in self.workers:
            if worker in self.copying:
                self.send(worker, ('end', None))
        self.copying = set()
        self.copy_statement = None

    def take_line(self, line):
        if not self.pending and (not line.strip() or line.startswith(b'--')):
            return
        if not self.pending and line.startswith(b'\\'):
            if line.startswith(HARMLESS_META):
                return
            raise StreamNotSupported('the data script holds the psql meta-command %r' % line[:60])
        self.pending.append(line)
        if not line.rstrip().endswith(b';'):
            return
        statement = b'\n'.join(self.pending).strip()
        self.pending = []
        if COPY_START.match(statement):
            self.copy_statement = statement[:-1]  # without the ';'
            return
        if SESSION_STATEMENT.match(statement):
            self.control.execute(statement)
            for worker in self.workers:
                self.send(worker, ('sql', statement))
            return
        # Sequence values, large objects: in script order, after the rows before them are in.
        self.barrier()
        try:
            self.control.execute(statement)
        except Exception as exc:
            if getattr(exc, 'sqlstate', None) == SYNTAX_ERROR:
                # We cut the script where pg_restore did not mean a statement to end (a ';' at the end of a line
                # inside a quoted name): not the dump's fault.
                raise StreamNotSupported('a statement of the data script was not split where it ends: %s' % exc)
            raise StreamFailed('running %r: %s' % (statement[:200], exc))

    def finish(self):
        if self.copy_statement is not None or self.pending:
            raise StreamFailed('the data script ended in the middle of %s' % (
                'a COPY block' if self.copy_statement is not None else 'a statement'))
        self.barrier()


class DumpFile(object):
    """A dump on disk that every pass reads from its start, through ``decompressor`` (argv) when compressed (or
    ``cat`` when the tools run in a container that cannot see the host's paths)."""

    def __init__(self, path, decompressor=None):
        self.path = path
        self.decompressor = list(decompressor) if decompressor else None

    def open(self, argv, env, read_output):
        if self.decompressor:
            return Pipeline([self.decompressor + [self.path], argv], env=env, read_output=read_output)
        return Pipeline([argv + [self.path]], env=env, read_output=read_output)

    def after_data(self):
        return self


class DumpStream(object):
    """A dump while pg_backup writes it (a GrowingFile): the trial restore of a verified backup reads the file as it
    is written. Every pass reads it from its first byte, following the writer; the passes after the data read
    ``written``, the DumpFile itself, once it holds every byte."""

    def __init__(self, feed, decompressor, written):
        self.feed = feed
        self.decompressor = list(decompressor) if decompressor else None
        self.written = written

    def open(self, argv, env, read_output):
        stages = [self.decompressor, argv] if self.decompressor else [argv]
        return Pipeline(stages, env=env, read_output=read_output, feed=self.feed.reader())

    def after_data(self):
        try:
            self.feed.wait_ended()
        except FeedFailed as exc:
            raise StreamFailed('writing the dump: %s' % exc)
        return self.written


class Beside(threading.Thread):
    """``work()`` in a thread of its own, timed as ``timings[phase]``; result() joins it and returns what it returned
    or raises what it raised."""

    def __init__(self, work, timings, phase):
        super(Beside, self).__init__(name=phase)
        self.daemon = True
        self.work, self.timings, self.phase = work, timings, phase
        self.value, self.error = None, None
        self.start()

    def run(self):
        try:
            with timed(self.timings, self.phase):
                self.value = self.work()
        except Exception as exc:  # raised again by result(), in the caller's thread
            self.error = exc

    def result(self):
        self.join()
        if self.error is not None:
            raise self.error
        return self.value


class StreamingRestore(object):
    """One restore of the dump ``source`` (DumpFile or DumpStream) into the existing, empty ``dbname``."""

    def __init__(self, tools, params, source, dbname, jobs, list_dir, options=None, no_owner=False, on_loaded=None):
        self.tools = tools
        # Run beside the post-data section once every row is in (the row counts against the manifest: indexes,
        # constraints and triggers change no row, so counting need not wait for them). Its result: ``loaded``.
        self.on_loaded = on_loaded
        self.loaded = None
        self.params = params
        self.source = source
        self.dbname = dbname
        self.jobs = max(jobs, 1)
        self.list_dir = list_dir
        self.options = options
        self.owner_args = ['--no-owner', '--no-privileges'] if no_owner else []
        self.timings = {}

    def pg_restore(self, args, read_output):
        return self.source.open(self.tools.argv('pg_restore', args), self.tools.run_env(), read_output)

    def finish(self, pipeline, what, reader_error=None):
        """Wait for the pipeline; raise for a tool that failed on its own (the deeper cause), else ``reader_error``."""
        results = pipeline.wait()
        harmless = set()
        if results[-1][1] == 0:
            # pg_restore stops reading once it has what it needs (the table of contents); the decompressor
            # feeding it then dies of SIGPIPE, which is not a failure, nor one we killed once we stopped feeding it.
            harmless.update((-13, 141))
            if pipeline.cut:
                harmless.update(rc for dummy, rc, dummy2 in results[:-1])
        if reader_error is not None:
            harmless.update((-9, -13, 141))  # we killed the tools because the reader had failed
        failure = first_failure([(argv, 0 if rc in harmless else rc, err) for argv, rc, err in results])
        if failure is not None:
            argv, rc, err = failure
            raise StreamFailed('%s: %s %s: %s' % (what, os.path.basename(argv[0]), describe_rc(rc),
                                                  (err or 'no error output')[-2000:]))
        if pipeline.feed_error is not None:
            raise StreamFailed('%s: reading the dump while it is written: %s' % (what, pipeline.feed_error))
        if reader_error is not None:
            raise reader_error

    def start_into_db(self, args):
        return self.pg_restore(self.tools.connection_args(conninfo_dbname(self.dbname)) + ['--exit-on-error'] + args,
                               read_output=False)

    def run_into_db(self, args, what):
        self.finish(self.start_into_db(args), what)

    def run(self):
        with timed(self.timings, 'toc'):
            listing = self.table_of_contents()
        # The listing hides pg_dump's own ENCODING/STDSTRINGS/SEARCHPATH entries, so compare entries, not counts.
        if sorted(listing[None]) != sorted(listing['pre-data'] + listing['data'] + listing['post-data']):
            raise StreamNotSupported('the archive has entries outside the pre-data, data and post-data sections')
        with timed(self.timings, 'pre-data'):
            self.run_into_db(['--section=pre-data'] + self.owner_args, 'creating the schema (pre-data)')
        with timed(self.timings, 'data'):
            if listing['data']:
                self.load_data()
        with timed(self.timings, 'post-data'):
            self.source = self.source.after_data()
            beside = Beside(self.on_loaded, self.timings, 'compare') if self.on_loaded else None
            try:
                fault_point('index-build')
                self.build_post_data(listing['post-data'])
            except Exception:
                if beside is not None:
                    beside.join()  # the post-data failure is the one to report
                raise
            if beside is not None:
                self.loaded = beside.result()

    def table_of_contents(self):
        """The entries of each section and of the whole archive ({section or None: [entry]}). The four listings only
        read the head of the dump: they run side by side."""
        sections = ('pre-data', 'data', 'post-data', None)
        running = {}
        try:
            for section in sections:
                running[section] = self.pg_restore(['-l'] + (['--section=%s' % section] if section else []), True)
        except Exception:
            for pipeline in running.values():
                pipeline.kill()
            raise
        outputs = {}
        for section in sections:
            outputs[section] = running[section].stdout.read()
        listing = {}
        for section in sections:
            self.finish(running[section], 'reading the table of contents%s' % (' (%s)' % section if section else ''))
            listing[section] = toc_entries(outputs[section].decode('utf-8', 'replace'))
        return listing

    def load_data(self):
        control = self.open_connection(self.options)
        try:
            self.load_data_with(control, self.loading_options(control))
        finally:
            control.close()

    def loading_options(self, control):
        """Session options of the COPY connections.

        TOAST compression: values that need it are compressed with lz4 where the server has it (and the column
        names no method of its own). pglz gives up on incompressible data (images, archives, random bytes) only
        after trying, and costs a restore of such data about a tenth of its server CPU; lz4 does not.
        """
        has_lz4 = control.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'").fetchone()
        if has_lz4 and has_lz4[0]:
            return ' '.join(filter(None, [self.options, '-c default_toast_compression=lz4']))
        return self.options

    def load_data_with(self, control, options):
        workers = [CopyWorker(lambda: self.open_connection(options), 'copy-%d' % (index + 1))
                   for index in range(self.jobs)]
        for worker in workers:
            worker.start()
        pipeline = self.pg_restore(['--section=data', '-f', '-'], read_output=True)
        reader_error = None
        try:
            loader = ScriptLoader(control, workers)
            parts = []
            for chunk in iter(lambda: pipeline.stdout.read(CHUNK), b''):
                parts.append(chunk)
                if b'\n' in chunk:  # a line longer than a chunk (a huge row) is joined once, not per chunk
                    rest = loader.feed(b''.join(parts) if len(parts) > 1 else chunk)
                    parts = [rest] if rest else []
            if parts:
                loader.feed(b''.join(parts) + b'\n')
            loader.finish()
        except (StreamNotSupported, StreamFailed) as exc:
            reader_error = exc
        except Exception as exc:
            reader_error = StreamFailed('loading rows: %s' % exc)
        finally:
            if reader_error is not None:
                pipeline.kill()
            for worker in workers:
                deliver(worker, ('stop', None))  # a busy worker still empties its inbox, also after a failure
            for worker in workers:
                worker.join()
        self.finish(pipeline, 'loading rows (pg_restore --section=data)', reader_error)
        raise_worker_error(workers)

    def open_connection(self, options):
        return connect(self.params, dbname=self.dbname, application_name='stackops-restore-copy', options=options)

    def build_post_data(self, entries):
        if not entries:
            return
        parallel, serial = split_post_data(entries, self.jobs)
        if self.tools.in_container:
            # A list file would first have to be copied into the container; one pg_restore does it all.
            self.run_into_db(['--section=post-data'] + self.owner_args, 'building indexes and constraints (post-data)')
            return
        groups = [('indexes and constraints, part %d' % (index + 1), chunk) for index, chunk in enumerate(parallel)]
        self.run_lists_together(groups)
        if serial:
            self.run_lists_together([('foreign keys, triggers and the rest of post-data', serial)])

    def run_lists_together(self, groups):
        running = []
        try:
            for what, entries in groups:
                handle, path = tempfile.mkstemp(prefix='post-data-', suffix='.list', dir=self.list_dir)
                with os.fdopen(handle, 'w') as listing:
                    listing.write('\n'.join(entries) + '\n')
                running.append((what, self.start_into_db(['-L', path] + self.owner_args)))
        except Exception:
            for dummy, pipeline in running:
                pipeline.kill()
            raise
        failure = None
        for what, pipeline in running:
            try:
                self.finish(pipeline, 'building %s' % what)
            except StreamFailed as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
