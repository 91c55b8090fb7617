# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring a backup set into a database (streamed, with pg_restore or with psql) and checking the result."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import check_files
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError, describe_os_error, remove_tree
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_tools import EXTENSIONS, compressor_argv, feed_hashed
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_command
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import decrypt_set
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import PgTools, connect, conninfo_dbname, describe_target
from ansible_collections.stackops.runbooks.plugins.module_utils.pg_database import (
    compare_tables, connect_for_stats, table_stats, user_tables)
from ansible_collections.stackops.runbooks.plugins.module_utils.pipeline import Pipeline, describe_rc
from ansible_collections.stackops.runbooks.plugins.module_utils.restore_roles import (
    acl_entries, create_stand_ins, drop_stand_ins, missing_roles, named_roles)
from ansible_collections.stackops.runbooks.plugins.module_utils.restore_selection import select_toc
from ansible_collections.stackops.runbooks.plugins.module_utils.restore_stream import (
    DumpFile, DumpStream, StreamFailed, StreamNotSupported, StreamingRestore, timed)
from ansible_collections.stackops.runbooks.plugins.module_utils.run_journal import DROP_ROLE, REMOVE_DIRECTORY


# The restore goes into a database nobody uses yet and is only put in place by a later, synchronous commit (rename or
# swap), which flushes all WAL before it: asynchronous commits lose nothing here.
RESTORE_SESSION_OPTIONS = '-c synchronous_commit=off'


class RestoreSession(object):
    """Restores one backup set into a database through pg_restore or psql.

    A whole custom-format dump is streamed (restore_stream): decompressed on the fly, its rows loaded over
    ``jobs`` connections, its indexes built side by side. Everything else restores from a file path: a set
    compressed outside pg_dump is first decompressed into ``work_dir`` so pg_restore can seek in it
    (``--jobs``), and in compose mode the file is copied into the database container, because the tools
    there cannot see host paths.
    """

    def __init__(self, module, params, set_dir, manifest, work_dir=None, selective=False, journal=None):
        self.module = module
        # Records the scratch directory before it exists, so a run killed later leaves the next run its name.
        self.journal = journal
        self.params = params
        self.set_dir = set_dir
        self.manifest = manifest
        self.tools = PgTools(module, params)
        self.work_dir = work_dir or os.path.dirname(set_dir)
        self.host_tmp = None
        self.container_tmp = None
        self.source = None
        self.staged = None
        self.streams = manifest['format'] == 'custom' and not selective and params.get('streaming', True)
        # How the last restore ran ('stream', 'pg_restore' or 'psql') and, when streamed, seconds per phase.
        self.method = None
        self.timings = {}
        self.compared = None
        # Roles the dump's privileges name that the target server lacks (restore_roles): left out of the copy.
        self.skipped_roles = []
        self.tools.extra_env['PGOPTIONS'] = RESTORE_SESSION_OPTIONS

    def run(self, argv, what):
        rc, out, err = self.module.run_command(argv, environ_update=self.tools.environ())
        if rc != 0:
            detail = (err or out or '').strip()
            raise BackupError('%s failed (%s): %s' % (what, describe_rc(rc), detail[-2000:]))
        return out

    def compose(self, args, what):
        return self.run(compose_command(self.module, self.params, args), what)

    def to_tool_path(self, host_path):
        if not self.tools.in_container:
            return host_path
        if self.container_tmp is None:
            self.container_tmp = '/tmp/stackops-restore-%s' % os.urandom(6).hex()
            # 0700: the dump copied in holds every row, and /tmp in the container is shared by all its users.
            self.compose(['exec', '-T', self.params['compose_service'], 'mkdir', '-m', '700', '-p', self.container_tmp],
                         'creating %s in service %s' % (self.container_tmp, self.params['compose_service']))
        target = '%s/%s' % (self.container_tmp, os.path.basename(host_path.rstrip('/')))
        self.compose(['cp', host_path, '%s:%s' % (self.params['compose_service'], target)],
                     'copying %s into service %s' % (host_path, self.params['compose_service']))
        return target

    def stage_checked(self):
        """Check the set against its manifest and stage the dump, reading the dump file once.

        Sizes are compared first (cheap). A streamed dump is hashed in full before anything is restored (a
        hashing read is a fraction of a restore). Otherwise an externally compressed dump is hashed while it is
        fed to the decompressor, so the bytes restored are exactly the bytes checked; every other file is hashed
        as usual. Returns the problems (empty: the set matches its manifest and the dump is ready).
        """
        if self.manifest.get('encryption'):
            with timed(self.timings, 'decrypt'):
                problems = self.decrypt()
            # decrypt_set checked the ciphertext before and the plaintext after: a stream needs no more.
            if problems or self.streams:
                return problems
        elif self.streams:
            with timed(self.timings, 'checksums'):
                return check_files(self.set_dir, self.manifest)
        problems = check_files(self.set_dir, self.manifest, sizes_only=True)
        if problems:
            return problems
        known = {}
        if self.compressed_outside_pg_dump():
            known[self.manifest['data']] = self.decompress()
        problems = check_files(self.set_dir, self.manifest, known=known)
        if not problems:
            self.point_at_dump()
        return problems

    def decrypt(self):
        """An encrypted set (pg_backup_encrypt) is decrypted into this session's scratch directory and restored from
        there, as the plaintext set its manifest described before encryption. Returns the problems."""
        dest = os.path.join(self.scratch_dir(), 'set')
        os.mkdir(dest, 0o700)
        problems, plain = decrypt_set(self.module, self.set_dir, self.manifest, self.params.get('age_identity_file'), dest)
        if not problems:
            self.set_dir, self.manifest = dest, plain
        return problems

    def compressed_outside_pg_dump(self):
        compression = self.manifest['compression']
        return compression['where'] == 'external' and compression['method'] != 'none'

    def point_at_dump(self):
        """The dump pg_restore/psql reads: the staged (decompressed) copy if any, as the tools see its path."""
        self.source = self.to_tool_path(self.staged or os.path.join(self.set_dir, self.manifest['data']))
        return self.source

    def decompress(self):
        """Decompress the dump into ``work_dir`` (pg_restore -j needs a seekable file); returns the sha256 of the
        compressed bytes, computed while feeding them to the decompressor."""
        data = os.path.join(self.set_dir, self.manifest['data'])
        method = self.manifest['compression']['method']
        target = os.path.join(self.scratch_dir(), self.manifest['data'][:-len(EXTENSIONS[method])])
        try:
            with open(target, 'wb') as out:
                digest, rc, detail = feed_hashed(compressor_argv(self.module, method, 0, decompress=True), data, out)
        except (IOError, OSError) as exc:
            raise BackupError('decompressing %s: %s' % (data, describe_os_error(exc, target)))
        expected = ((self.manifest.get('files') or {}).get(self.manifest['data']) or {}).get('sha256')
        # A damaged file makes the decompressor fail too; the checksum mismatch is the better message for that.
        if rc != 0 and digest == expected:
            raise BackupError('decompressing %s failed (%s): %s' % (data, describe_rc(rc), detail[-1000:]))
        self.staged = target
        return digest

    def stage(self):
        """Stage the dump without checking it (callers that checked the set under the same lock)."""
        if self.compressed_outside_pg_dump():
            self.decompress()
        return self.point_at_dump()

    def restore(self, dbname, jobs=1, tables=(), schemas=(), no_owner=False, recreate=None, feed=None, compare=None):
        """Restore into the existing, empty ``dbname``. ``recreate`` (drop and create it again) lets a streamed
        restore that meets something it does not handle start over the classic way. With ``feed`` (a GrowingFile:
        the dump while pg_backup writes it into this set) the restore reads the stream; it cannot start over, so
        StreamNotSupported reaches the caller, which restores from the written file instead. ``compare()`` (the
        check of the restored rows) runs once the rows are in: a streamed restore runs it beside the index builds.
        Its result is ``self.compared``."""
        streamed = self.streams and self.source is None and not (tables or schemas)
        stand_ins = []
        if feed is None and self.manifest['format'] != 'plain' and not no_owner:
            # A dump read while it is written is restored on the server it comes from: its roles are there.
            if not streamed and self.source is None:
                self.stage()
            stand_ins = self.stand_in_missing_roles(dbname, streamed)
        try:
            self.restore_into(dbname, jobs, tables, schemas, no_owner, recreate, feed, compare)
        except BackupError as exc:
            hint = search_path_hint(str(exc))
            if hint:
                raise BackupError('%s; %s' % (exc, hint))
            raise
        finally:
            if stand_ins:
                drop_stand_ins(self.params, dbname, stand_ins)
                for role in stand_ins:
                    if self.journal is not None:
                        self.journal.done(DROP_ROLE, role)

    def read_dump(self, args, streamed, what):
        """The output of pg_restore ``args`` on the dump (text): from the set's file through its decompressor when
        the restore streams, else from the staged dump."""
        argv = self.tools.argv('pg_restore', args)
        if streamed:
            pipeline = self.dump_file().open(argv, self.tools.run_env(), True)
        else:
            pipeline = Pipeline([argv + [self.source]], env=self.tools.run_env())
        output = pipeline.stdout.read()
        results = pipeline.wait()
        # Only pg_restore's verdict counts: a decompressor it stopped reading from dies of SIGPIPE.
        argv, rc, err = results[-1]
        if rc != 0:
            raise BackupError('%s of %s failed (%s): %s' % (what, self.manifest['id'], describe_rc(rc),
                                                            (err or 'no error output')[-2000:]))
        return output.decode('utf-8', 'replace')

    def stand_in_missing_roles(self, dbname, streamed):
        """Give the roles the dump's privileges name and this server lacks a stand-in for the restore (see
        restore_roles); returns them (also in ``skipped_roles``)."""
        entries = acl_entries(self.read_dump(['-l'], streamed, 'listing the table of contents'))
        if not entries:
            return []
        list_path = os.path.join(self.scratch_dir(), 'privileges.list')
        with open(list_path, 'w') as handle:
            handle.write('\n'.join(entries) + '\n')
        script = self.read_dump(['-f', '-', '-L', self.to_tool_path(list_path)], streamed, 'reading the privileges')
        roles = named_roles(script)
        with connect(self.params, dbname=dbname, application_name='stackops-restore') as conn:
            missing = missing_roles(conn, roles) if roles else []
            for role in missing:
                if self.journal is not None:
                    self.journal.add(DROP_ROLE, role)
            try:
                create_stand_ins(conn, missing)
            except Exception as exc:
                raise BackupError('backup %s grants privileges to roles %s, which %s lacks, and no stand-in could be '
                                  'created for them (%s): create the roles (the set\'s globals.sql has them), or '
                                  'restore with no_owner, which leaves out every ownership and privilege' % (
                                      self.manifest['id'], ', '.join(missing), describe_target(self.params), exc))
        self.skipped_roles = sorted(set(self.skipped_roles) | set(missing))
        return missing

    def restore_into(self, dbname, jobs, tables, schemas, no_owner, recreate, feed, compare):
        where = describe_target(self.params, dbname)
        self.compared = None
        if self.streams and self.source is None and not (tables or schemas):
            try:
                self.compared = self.restore_streaming(dbname, jobs, no_owner, feed, compare)
                self.method = 'stream'
                return
            except StreamNotSupported as exc:
                if feed is not None:
                    raise
                if recreate is None:
                    raise BackupError('streamed restore of %s into %s: %s' % (self.manifest['id'], where, exc))
                self.module.warn('%s: %s; restoring it from a decompressed copy with pg_restore instead' % (
                    self.manifest['id'], exc))
                recreate()
            except StreamFailed as exc:
                raise BackupError('pg_restore of %s into %s failed while %s' % (self.manifest['id'], where, exc))
        if self.source is None:
            self.stage()
        if self.manifest['format'] == 'plain':
            if tables or schemas:
                raise BackupError('tables/schemas selection needs a custom or directory format backup; %s is plain SQL'
                                  % self.manifest['id'])
            argv = self.tools.argv('psql', self.tools.connection_args(conninfo_dbname(dbname)) + [
                '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', self.source])
            self.run(argv, 'psql restore of %s into %s' % (self.manifest['id'], where))
            self.method = 'psql'
            self.compare_after(compare)
            return
        args = self.tools.connection_args(conninfo_dbname(dbname)) + ['--exit-on-error', '-j', str(max(jobs, 1))]
        if no_owner:
            args += ['--no-owner', '--no-privileges']
        if tables or schemas:
            listing = self.run(self.tools.argv('pg_restore', ['-l', self.source]), 'pg_restore -l of %s' % self.source)
            kept = select_toc(listing, tables, schemas, relations=self.manifest.get('relations'))
            if not kept:
                raise BackupError('backup %s contains none of the requested tables %s / schemas %s' % (
                    self.manifest['id'], ['.'.join(t) for t in tables], list(schemas)))
            list_path = os.path.join(self.scratch_dir(), 'restore.list')
            with open(list_path, 'w') as handle:
                handle.write('\n'.join(kept) + '\n')
            args += ['-L', self.to_tool_path(list_path)]
        argv = self.tools.argv('pg_restore', args + [self.source])
        self.run(argv, 'pg_restore of %s into %s' % (self.manifest['id'], where))
        self.method = 'pg_restore'
        self.compare_after(compare)

    def compare_after(self, compare):
        if compare is not None:
            with timed(self.timings, 'compare'):
                self.compared = compare()

    def decompressor(self):
        if self.compressed_outside_pg_dump():
            return compressor_argv(self.module, self.manifest['compression']['method'], 0, decompress=True)
        return None

    def dump_file(self):
        path = os.path.join(self.set_dir, self.manifest['data'])
        return DumpFile(path, self.decompressor() or (
            [self.module.get_bin_path('cat', required=True)] if self.tools.in_container else None))  # no host paths

    def restore_streaming(self, dbname, jobs, no_owner, feed=None, compare=None):
        decompressor = self.decompressor()
        dump = self.dump_file()
        source = DumpStream(feed, decompressor, dump) if feed is not None else dump
        restore = StreamingRestore(self.tools, self.params, source, dbname, jobs, self.scratch_dir(),
                                   options=RESTORE_SESSION_OPTIONS, no_owner=no_owner, on_loaded=compare)
        try:
            restore.run()
        finally:
            self.timings.update(restore.timings)
        return restore.loaded

    def scratch_dir(self):
        """This session's directory in ``work_dir`` (a decompressed dump, list files), made on first use."""
        if self.host_tmp is None:
            path = os.path.join(self.work_dir, '.stackops-restore-%s' % os.urandom(6).hex())
            if self.journal is not None:
                self.journal.add(REMOVE_DIRECTORY, path)
            os.mkdir(path, 0o700)
            self.host_tmp = path
        return self.host_tmp

    def cleanup(self):
        if self.container_tmp:
            self.module.run_command(compose_command(self.module, self.params, [
                'exec', '-T', self.params['compose_service'], 'rm', '-rf', self.container_tmp]))
            self.container_tmp = None
        if self.host_tmp:
            remove_tree(self.host_tmp)
            if self.journal is not None:
                self.journal.done(REMOVE_DIRECTORY, self.host_tmp)
            self.host_tmp = None


# What PostgreSQL says when a function body names something its search_path does not find, and the function it was in.
UNRESOLVED = re.compile(r'(function|relation|operator|type) (\S+) does not exist')
IN_FUNCTION = re.compile(r'(?:SQL function|PL/pgSQL function) "?([^"\s(]+)')


def search_path_hint(text):
    """What to do when a restore failed because a function body relies on search_path, or None.

    pg_dump names every object with its schema and restores with search_path set to '': a function that names
    objects of its own schema unqualified finds nothing once it runs during the restore (an expression index, a
    CHECK constraint, a materialized view). Plain pg_restore fails the same way; the fix belongs in the function."""
    missing, context = UNRESOLVED.search(text), IN_FUNCTION.search(text)
    if missing is None or context is None:
        return None
    return ('function %s names %s %s without its schema and relies on search_path, which pg_dump sets to an empty '
            'one for every restore (plain pg_restore fails the same way): schema-qualify the names in its body, or '
            'give it its own search_path (ALTER FUNCTION %s SET search_path = <its schema>, pg_catalog), then take '
            'a new backup' % (context.group(1), missing.group(1), missing.group(2), context.group(1)))


def expected_tables(manifest, tables=(), schemas=()):
    """Manifest tables narrowed to a selection (all of them without one)."""
    chosen = manifest.get('tables') or []
    if tables or schemas:
        chosen = [t for t in chosen if t['schema'] in schemas or (t['schema'], t['name']) in tables]
    return chosen


def check_restored(params, dbname, manifest, tables=(), schemas=(), content=True):
    """Row counts (and content checksums when the manifest has them) of ``dbname`` vs the manifest."""
    expected = expected_tables(manifest, tables, schemas)
    use_content = content and any(t.get('content_checksum') for t in expected)
    # A table the backup could only count with its database's search_path is counted with that path again.
    paths = dict(((t['schema'], t['name']), t['search_path']) for t in expected if t.get('search_path'))
    with connect_for_stats(params, dbname, application_name='stackops-verify') as conn:
        present = set(user_tables(conn))
        if tables or schemas:
            present &= set((t['schema'], t['name']) for t in expected)
        actual = table_stats(conn, sorted(present), content=use_content, paths=paths)
    return compare_tables(expected, actual, content=use_content), use_content


def restore_session_spec():
    """Options of a RestoreSession, taken by pg_backup_restore and pg_backup_verify (doc fragment
    stackops.runbooks.postgres.restore_session)."""
    return dict(
        jobs=dict(type='int', default=2),
        streaming=dict(type='bool', default=True),
        no_owner=dict(type='bool', default=False),
        work_dir=dict(type='path'),
        age_identity_file=dict(type='path'),
    )
