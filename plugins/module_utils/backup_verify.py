# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proving a backup set restores: checksums, a trial restore into a scratch database, row counts (and content
checksums) against the manifest.

Two callers: pg_backup_verify proves a published set (``verify_set``); pg_backup with ``verify`` proves the set it is
writing before it publishes it, from the dump's own stream while the dump is written (``TrialWhileDumping``), or,
where that cannot run, with ``verify_set`` on the finished ``.partial`` directory.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import os
import threading
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import check_files
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    BackupError, isoformat, scratch_name, utcnow)
from ansible_collections.stackops.runbooks.plugins.module_utils.fault import fault_point
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect
from ansible_collections.stackops.runbooks.plugins.module_utils.pg_database import (
    admin_db, create_database, drop_database, recreate_database)
from ansible_collections.stackops.runbooks.plugins.module_utils.pipeline import GrowingFile
from ansible_collections.stackops.runbooks.plugins.module_utils.restore_session import RestoreSession, check_restored
from ansible_collections.stackops.runbooks.plugins.module_utils.restore_stream import StreamFailed, StreamNotSupported
from ansible_collections.stackops.runbooks.plugins.module_utils.run_journal import DROP_DATABASE


@contextlib.contextmanager
def scratch_database(params, manifest, journal):
    """A new, empty database like the backed-up one, journaled before it exists (so the next run drops it should
    this one be killed) and dropped whatever happens. Yields (name, admin database, recreate())."""
    scratch = scratch_name(manifest['database'], 'verify')
    admin = admin_db(params, scratch)
    like = dict(manifest['database_info'], owner=None)
    created = False
    try:
        with connect(params, dbname=admin, application_name='stackops-verify') as conn:
            journal.add(DROP_DATABASE, scratch)
            create_database(conn, scratch, like=like)
            created = True
        fault_point('verify')
        yield scratch, lambda: recreate_database(params, admin, scratch, like, 'stackops-verify')
    finally:
        if created:
            with connect(params, dbname=admin, application_name='stackops-verify') as conn:
                drop_database(conn, scratch)
        journal.done(DROP_DATABASE, scratch)


def trial_restore(params, session, manifest, jobs, compare_content):
    """Restore the staged dump into a throwaway database and compare it with the manifest."""
    with scratch_database(params, manifest, session.journal) as (scratch, recreate):
        session.restore(scratch, jobs=jobs, no_owner=params.get('no_owner', False), recreate=recreate,
                        compare=lambda: check_restored(params, scratch, manifest, content=compare_content))
        differences, content = session.compared
    return scratch, differences, content


def verify_set(module, params, set_dir, manifest, journal, jobs, compare_content=True, trial=True, streaming=True):
    """Checksums, then (with ``trial``) a trial restore of the set in ``set_dir`` under the caller's lock.

    Returns the result keys pg_backup_verify reports: checksums_ok, differences, and after a trial restore
    scratch_database, content_compared, restore_method, phase_seconds.
    """
    session = RestoreSession(module, dict(params, streaming=streaming), set_dir, manifest, params.get('work_dir'),
                             journal=journal)
    result = {}
    try:
        # With a trial restore the dump is hashed while it is decompressed for it: one read, not two.
        staging_error = None
        try:
            problems = session.stage_checked() if trial else check_files(set_dir, manifest)
        except BackupError as exc:
            staging_error = exc
            problems = check_files(set_dir, manifest)
        result.update(checksums_ok=not problems, differences=list(problems))
        if not problems and trial:
            try:
                if staging_error is not None:
                    raise staging_error
                scratch, differences, content = trial_restore(params, session, manifest, jobs, compare_content)
            except BackupError as exc:
                scratch, differences, content = None, ['trial restore failed: %s' % exc], False
            result.update(scratch_database=scratch, content_compared=content, restore_method=session.method,
                          phase_seconds=session.timings)
            result['differences'].extend(differences)
    finally:
        session.cleanup()
    return result


def verification_record(result, trial):
    """What verification.json holds (pg_backup_info, retention and restores read ``verified``)."""
    record = dict(
        verified=not result['differences'], verified_at=isoformat(utcnow()), checksums_ok=result['checksums_ok'],
        trial_restore=trial and result['checksums_ok'], content_compared=result.get('content_compared', False),
        differences=result['differences'], duration_seconds=result['duration_seconds'])
    if result.get('during_backup'):
        record['during_backup'] = True
    return record


class TrialWhileDumping(object):
    """The trial restore of a backup pg_backup is writing, fed the bytes of its dump file as they are written.

    The restore then costs about the slower of the dump and itself, not their sum, and it restores exactly the
    bytes stored in the file (compressed, read back and decompressed for it). Usage: ``start()`` before the dump
    (``feed`` goes to the file writer), ``finish(manifest)`` once the set is complete. ``finish`` returns None when
    the stream held something the streamed restore does not handle: the caller then restores the written set the
    classic way (``verify_set``).
    """

    def __init__(self, module, params, set_dir, manifest, journal, jobs, compare_content=True):
        self.params = params
        self.manifest = manifest
        self.jobs = jobs
        self.compare_content = compare_content
        self.feed = GrowingFile(os.path.join(set_dir, manifest['data']))
        self.session = RestoreSession(module, params, set_dir, manifest, journal=journal)
        self.scratch = None
        self.context = None
        self.thread = None
        self.error = None
        self.unsupported = None
        self.started = self.restored = self.dump_ended = None
        self.tables_ready = threading.Event()
        self.aborted = False

    def start(self):
        """Start the trial beside the dump about to begin: it creates its scratch database, then follows the dump
        file from its first byte."""
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self.restore, name='trial-restore')
        self.thread.daemon = True
        self.thread.start()

    def restore(self):
        try:
            context = scratch_database(self.params, self.manifest, self.session.journal)
            self.scratch = context.__enter__()[0]
            self.context = context
            self.session.restore(self.scratch, jobs=self.jobs, no_owner=self.params.get('no_owner', False),
                                 feed=self.feed, compare=self.compare)
        except StreamNotSupported as exc:
            self.unsupported = exc
        except (BackupError, StreamFailed) as exc:
            self.error = exc
        except Exception as exc:  # reported by finish(), with where it happened
            self.error = BackupError('%s: %s' % (type(exc).__name__, exc))
        finally:
            self.restored = time.monotonic()

    def compare(self):
        """The row counts of the restored database against the manifest, beside the index builds, once the dump's
        own counts are in the manifest (tables_known())."""
        self.tables_ready.wait()
        if self.aborted:
            return None
        return check_restored(self.params, self.scratch, self.manifest, content=self.compare_content)

    def tables_known(self):
        self.tables_ready.set()

    def join(self):
        if self.thread is not None:
            self.thread.join()
            self.thread = None

    def finish(self, manifest):
        """Compare the restored database with the finished ``manifest``; returns the result keys of verify_set
        (plus during_backup), or None when the classic restore must prove the set instead."""
        self.join()
        try:
            if self.unsupported is not None:
                return None
            result = dict(checksums_ok=True, differences=[], scratch_database=self.scratch, during_backup=True,
                          restore_method='stream', phase_seconds=dict(self.session.timings))
            if self.error is not None:
                result.update(content_compared=False, differences=['trial restore failed: %s' % self.error])
            else:
                differences, content = self.session.compared
                result.update(content_compared=content, differences=differences)
            return result
        finally:
            self.close()

    def close(self):
        """Stop (if still running), drop the scratch database, remove the session's files. Safe to call twice."""
        self.feed.end(BackupError('the backup stopped'))
        if not self.tables_ready.is_set():
            self.aborted = True
            self.tables_ready.set()
        self.join()
        if self.context is not None:
            context, self.context = self.context, None
            try:
                context.__exit__(None, None, None)
            finally:
                self.session.cleanup()
