# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Taking a logical backup set (what pg_backup does): pre-checks, the dump in an exported snapshot with row counts
taken beside it, the extras (globals, files, volumes), the manifest, an optional trial restore that proves the set
before it is published, the atomic publish, retention and last_backup.json."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import re
import shutil
import threading
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import (
    backup_metrics, catalog, check_files, record_verification)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_lock import DatabaseLock
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_retention import (
    apply_retention, retention_policy_problem)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    MANIFEST, MANIFEST_VERSION, PARTIAL_SUFFIX, BackupError, PublishedNotDurable, compose_project_files, describe_os_error,
    ensure_backup_dir, file_inventory, fsync_path, isoformat, new_backup_id, publish, record_last_backup, remove_tree,
    set_checksum, slug, space_plan, utcnow, write_json)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_tools import (
    DEFAULT_LEVELS, EXTENSIONS, compressor_argv, pg_major, stream_to_file, tool_version)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_verify import (
    TrialWhileDumping, verification_record, verify_set)
from ansible_collections.stackops.runbooks.plugins.module_utils.metrics_file import MetricsFileError, write_metrics_file
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_command
from ansible_collections.stackops.runbooks.plugins.module_utils.fault import fault_point
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import (
    PgTools, connect, conninfo_dbname, describe_target, sql)
from ansible_collections.stackops.runbooks.plugins.module_utils.pg_database import (
    connect_for_stats, database_info, database_properties, database_search_path, relation_map, table_stats, user_tables)
from ansible_collections.stackops.runbooks.plugins.module_utils.pipeline import describe_rc, first_failure
from ansible_collections.stackops.runbooks.plugins.module_utils.restore_stream import timed
from ansible_collections.stackops.runbooks.plugins.module_utils.run_journal import RunJournal, clean_up_after_killed_runs


def plan(module, params, tools_major):
    """Decide file names and where compression happens for this format/method/pg_dump version."""
    fmt, method = params['format'], params['compression']
    level = params['compression_level'] if params['compression_level'] is not None else DEFAULT_LEVELS[method]
    if params['jobs'] > 1 and fmt != 'directory':
        raise BackupError('jobs=%d needs format=directory: pg_dump parallelises only directory-format dumps' % params['jobs'])
    if fmt == 'directory':
        if method in ('zstd', 'lz4') and (tools_major or 0) < 16:
            raise BackupError('pg_dump %s compresses directory-format dumps with gzip only; use compression=gzip or '
                              'format=custom (zstd through a host compressor)' % tools_major)
        where, data = 'pg_dump', 'data'
    elif fmt == 'custom':
        # zstd/lz4 go through the host compressor even where pg_dump could do it: it uses every core.
        where = 'pg_dump' if method in ('gzip', 'none') else 'external'
        data = 'data.dump' + (EXTENSIONS[method] if where == 'external' else '')
    else:
        where = 'external' if method != 'none' else 'none'
        data = 'data.sql' + EXTENSIONS[method]
    return dict(method=method, level=level, where=where), data


def pg_dump_args(params, compression, snapshot, target):
    args = ['-F', params['format'][0], '--no-sync']
    if compression['where'] == 'pg_dump':
        if compression['method'] in ('gzip', 'none'):
            args += ['-Z', str(compression['level'] if compression['method'] == 'gzip' else 0)]
        else:
            args += ['-Z', '%s:%d' % (compression['method'], compression['level'])]
    elif params['format'] == 'custom':
        args += ['-Z', '0']
    if snapshot:
        args += ['--snapshot', snapshot]
    if params['jobs'] > 1:
        args += ['-j', str(params['jobs'])]
    if target:
        args += ['-f', target]
    return args


class StatsThread(threading.Thread):
    """Counts rows in the exported snapshot while pg_dump streams, so the counts cost no extra wall time.

    It first takes ACCESS SHARE locks on every table, held until the counts are done: TRUNCATE is not MVCC-safe, so
    one committed after pg_dump exits (and releases its locks) would otherwise show a not-yet-counted table as empty
    in the snapshot, and the manifest would say 0 rows for a dump that has them.
    """

    def __init__(self, conn, tables, content):
        threading.Thread.__init__(self)
        self.conn, self.tables, self.content = conn, tables, content
        self.result, self.error = None, None

    def run(self):
        try:
            if self.tables:
                self.conn.execute(sql.SQL('LOCK TABLE {} IN ACCESS SHARE MODE').format(
                    sql.SQL(', ').join(sql.Identifier(schema, name) for schema, name in self.tables)))
            fault_point('count')
            self.result = table_stats(self.conn, self.tables, content=self.content,
                                      fallback_path=database_search_path(self.conn))
        except Exception as exc:  # reported by the main thread with context
            self.error = exc


def run_dump(module, params, tools, partial, compression, data_name, snapshot, dbname, feed=None):
    """Produce the data file(s) in ``partial``; returns {relative path: sha256} for files hashed while streaming."""
    env = tools.run_env()
    target_db = conninfo_dbname(dbname)
    hashed = {}
    if params['format'] == 'directory':
        if tools.in_container:
            inner = '/tmp/stackops-backup-%s' % os.path.basename(partial)
            argv = tools.argv('pg_dump', tools.connection_args(target_db) + pg_dump_args(params, compression, snapshot, inner))
            try:
                run_checked(module, argv, env, 'pg_dump in service %s' % params['compose_service'])
                run_checked(module, compose_command(module, params, [
                    'cp', '%s:%s' % (params['compose_service'], inner), os.path.join(partial, data_name)]), env,
                    'copying the dump out of service %s' % params['compose_service'])
            finally:
                module.run_command(compose_command(module, params, ['exec', '-T', params['compose_service'], 'rm', '-rf', inner]))
        else:
            argv = tools.argv('pg_dump', tools.connection_args(target_db) + pg_dump_args(
                params, compression, snapshot, os.path.join(partial, data_name)))
            run_checked(module, argv, env, 'pg_dump')
        return hashed
    stages = [tools.argv('pg_dump', tools.connection_args(target_db) + pg_dump_args(params, compression, snapshot, None))]
    if compression['where'] == 'external':
        stages.append(compressor_argv(module, compression['method'], compression['level']))
    digest = hashlib.sha256()
    dummy, results = stream_to_file(stages, env, os.path.join(partial, data_name), digest, feed=feed)
    failure = first_failure(results)
    if failure:
        argv, rc, err = failure
        name = os.path.basename(argv[0])
        if argv is stages[0]:
            name = 'pg_dump in service %s' % params['compose_service'] if tools.in_container else 'pg_dump'
        raise BackupError('%s %s while dumping %s: %s' % (
            name, describe_rc(rc), describe_target(params, dbname), err[-2000:] or 'no error output'))
    hashed[data_name] = digest.hexdigest()
    return hashed


def run_checked(module, argv, env, what):
    rc, out, err = module.run_command(argv, environ_update=env)
    if rc != 0:
        raise BackupError('%s %s: %s' % (what, describe_rc(rc), ((err or out) or 'no error output').strip()[-2000:]))
    return out


def copy_files(module, partial, paths):
    """Config files go into files/ under their base name; a clash gets a numeric prefix, never overwrites."""
    copied = []
    if not paths:
        return copied
    os.makedirs(os.path.join(partial, 'files'))
    for index, path in enumerate(paths):
        name = os.path.basename(path.rstrip('/'))
        target = os.path.join(partial, 'files', name)
        if os.path.exists(target):
            target = os.path.join(partial, 'files', '%d-%s' % (index, name))
        try:
            if os.path.isdir(path):
                shutil.copytree(path, target, symlinks=True)
            else:
                shutil.copy2(path, target)
            make_private(target)
        except (IOError, OSError) as exc:
            raise BackupError('cannot copy %s into the backup set: %s' % (path, describe_os_error(exc, target)))
        copied.append(dict(source=path, stored=os.path.relpath(target, partial)))
    return copied


def make_private(path):
    """0600 files and 0700 directories, like the dump: copy2 keeps the source's mode, and env files hold secrets."""
    if os.path.islink(path):
        return
    if not os.path.isdir(path):
        os.chmod(path, 0o600)
        return
    for dirpath, dirnames, filenames in os.walk(path):
        os.chmod(dirpath, 0o700)
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, 0o600)


def helper_image(module, params):
    if params.get('volume_helper_image'):
        return params['volume_helper_image']
    rc, out, err = module.run_command(compose_command(module, params, ['ps', '-q', params['compose_service']]))
    container = out.strip().splitlines()[0] if rc == 0 and out.strip() else None
    if container:
        rc, out, err = module.run_command([module.get_bin_path('docker', required=True), 'inspect', '--format',
                                           '{{.Config.Image}}', container])
        if rc == 0 and out.strip():
            return out.strip()
    raise BackupError('cannot find the image of compose service %s to archive volumes with; set volume_helper_image '
                      'to an image that has tar' % params['compose_service'])


def archive_volumes(module, params, partial, volumes, compression):
    archived = []
    if not volumes:
        return archived
    os.makedirs(os.path.join(partial, 'volumes'))
    image = helper_image(module, params)
    docker = module.get_bin_path('docker', required=True)
    for volume in volumes:
        stages = [[docker, 'run', '--rm', '--network', 'none', '-v', '%s:/volume:ro' % volume, '--entrypoint', 'tar',
                   image, '-C', '/volume', '-cf', '-', '.']]
        method = compression['method'] if compression['method'] != 'none' else None
        if method:
            stages.append(compressor_argv(module, method, DEFAULT_LEVELS[method]))
        name = '%s.tar%s' % (slug(volume), EXTENSIONS[method] if method else '')
        dummy, results = stream_to_file(stages, None, os.path.join(partial, 'volumes', name))
        failure = first_failure(results)
        if failure:
            raise BackupError('archiving docker volume %s %s: %s; check that the volume exists (docker volume ls)' % (
                volume, describe_rc(failure[1]), failure[2][-1000:]))
        archived.append(dict(volume=volume, stored='volumes/' + name))
    return archived


def dump_globals(module, params, tools, partial):
    argv = tools.argv('pg_dumpall', tools.connection_args() + ['--globals-only', '--no-role-passwords'])
    dummy, results = stream_to_file([argv], tools.run_env(), os.path.join(partial, 'globals.sql'))
    failure = first_failure(results)
    if failure:
        raise BackupError('pg_dumpall --globals-only %s on %s: %s' % (describe_rc(failure[1]), describe_target(params),
                                                                      failure[2][-1000:]))


def remove_stale_partials(backup_dir, database):
    """Partials of this database left by a killed run; safe to remove because we hold its lock. The name must be
    exactly this database's slug and a backup timestamp: 'app-' is also the start of a running 'app-prod-...'."""
    pattern = re.compile(re.escape(slug(database)) + r'-\d{8}T\d{9}Z' + re.escape(PARTIAL_SUFFIX) + '$')
    removed = []
    for name in os.listdir(backup_dir):
        if pattern.match(name):
            remove_tree(os.path.join(backup_dir, name))
            removed.append(name)
    return removed


def set_mode(module, path, mode):
    """Enforce ``backup_dir_mode`` (an octal string such as '0700', or an int)."""
    try:
        wanted = int(mode, 8) if isinstance(mode, str) else int(mode)
    except ValueError:
        raise BackupError('backup_dir_mode %r is not an octal mode such as 0700' % (mode,))
    try:
        if os.stat(path).st_mode & 0o7777 != wanted:
            os.chmod(path, wanted)
            fsync_path(path)
    except OSError as exc:
        raise BackupError('cannot set mode %s on %s: %s' % (mode, path, exc))


def take_backup(module, params, tools, partial, manifest, compression, data_name, dbname, include_files, trial, phases):
    """Dump in an exported snapshot while a second connection counts rows in that same snapshot (and, with
    ``trial``, while the trial restore reads the dump as it is written)."""
    try:
        snap_conn = connect_for_stats(params, dbname, autocommit=False, application_name='stackops-backup-snapshot')
    except Exception as exc:
        raise BackupError('cannot connect to %s: %s' % (describe_target(params, dbname), exc))
    with snap_conn:
        snap_conn.execute('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
        snapshot = snap_conn.execute('SELECT pg_export_snapshot()').fetchone()[0]
        tables = user_tables(snap_conn)
        relations = relation_map(snap_conn)
        stats = StatsThread(snap_conn, tables, params['content_checksums'])
        stats.start()
        try:
            fault_point('dump')
            with timed(phases, 'dump'):
                if trial is not None:
                    trial.start()
                try:
                    hashed = run_dump(module, params, tools, partial, compression, data_name, snapshot, dbname,
                                      feed=trial.feed if trial is not None else None)
                except BackupError:
                    # A count that failed ends the transaction whose snapshot pg_dump imports: pg_dump then only
                    # says the snapshot is gone, and the count's error is the cause to report.
                    stats.join()
                    if stats.error is not None:
                        raise BackupError('counting rows in %s failed: %s' % (describe_target(params, dbname),
                                                                              stats.error))
                    raise
                if trial is not None:
                    trial.dump_ended = time.monotonic()
        finally:
            with timed(phases, 'count-wait'):
                stats.join()
        snap_conn.rollback()
    if stats.error is not None:
        raise BackupError('counting rows in %s failed: %s' % (describe_target(params, dbname), stats.error))
    manifest['tables'] = stats.result
    manifest['relations'] = relations
    manifest['snapshot'] = snapshot
    if trial is not None:
        trial.tables_known()
    with timed(phases, 'extras'):
        if params['include_globals']:
            dump_globals(module, params, tools, partial)
            manifest['tools']['pg_dumpall'] = tool_version(module, tools.argv('pg_dumpall', ['--version']), tools.environ())
        if compression['where'] == 'external':
            manifest['tools'][compression['method']] = tool_version(
                module, [compressor_argv(module, compression['method'], 1)[0], '--version'])
        manifest['files_included'] = copy_files(module, partial, include_files)
        manifest['volumes_included'] = archive_volumes(module, params, partial, params['include_volumes'], compression)
    return hashed


def back_up(module):
    """What pg_backup does, from its validated params. Returns (result, None) or (result, failure message)."""
    run = BackupRun(module)
    try:
        result, failure = run.run()
    except BackupError as exc:
        return run.result, 'backup of %s failed, nothing was published: %s' % (run.dbname, exc)
    if failure is None:
        failure = write_backup_metrics(module, result)
    if failure is None:
        result['summary'] = backup_summary(result, run.dbname, module.check_mode)
    return result, failure


def backup_summary(result, dbname, check_mode):
    """The run in one line, for the role's report."""
    if not result['due']:
        return result['msg']
    return '%sbackup %s of %s: %s bytes in %ss, verified=%s, retention %s%d old sets' % (
        'would take ' if check_mode else '', result['backup_id'], dbname, result.get('size_bytes', '?'),
        result.get('duration_seconds', '?'), result.get('verified', 'skipped'),
        'would delete ' if check_mode else 'deleted ', len((result.get('retention') or {}).get('deleted') or []))


def write_backup_metrics(module, result):
    """The metrics_file of a set that was taken and proven (a failed one leaves the last good metrics in place).
    Returns a failure message or None."""
    path = module.params.get('metrics_file')
    if not path or 'metrics' not in result:
        return None
    try:
        result['metrics_file_changed'] = write_metrics_file(path, result['metrics'], check=module.check_mode)
    except MetricsFileError as exc:
        return 'backup %s was published, but %s' % (result['backup_id'], exc)
    return None


class BackupRun(object):
    """One pg_backup run: pre-checks (due, connection, space, retention policy), then, under the database's lock,
    the set written in ``<id>.partial``, proven (with ``verify``) and published, then retention and
    last_backup.json."""

    def __init__(self, module):
        self.module = module
        self.params = params = module.params
        self.dbname = params['database']
        self.tools = PgTools(module)
        self.started = utcnow()
        self.clock = time.monotonic()
        self.backup_id = new_backup_id(self.dbname, self.started)
        self.final = os.path.join(params['backup_dir'], self.backup_id)
        self.partial = self.final + PARTIAL_SUFFIX
        self.result = dict(changed=False, backup_id=self.backup_id, path=self.final,
                           manifest_path=os.path.join(self.final, MANIFEST), due=True, skipped_reason=None,
                           latest_verified=None)
        self.phases = {}
        self.manifest = None

    def run(self):
        params, result = self.params, self.result
        sets = catalog(params['backup_dir'], self.dbname, now=self.started)[0]
        if not self.due(sets):
            return result, None
        include_files, compression, data_name, info = self.plan(sets)
        if self.module.check_mode:
            if params['retention']:
                result['retention'] = dict(deleted=[], kept={}, freed_bytes=0, busy={})
                apply_retention(params['backup_dir'], self.dbname, params['retention'], result['retention'], delete=False)
            result.update(changed=True, manifest=self.manifest, msg='would write backup set %s (%s, %s) of %s%s' % (
                self.final, params['format'], compression['method'], describe_target(params, self.dbname),
                ' and prove it restores with a trial restore' if params['verify'] else ''))
            return result, None

        # Dumps hold every row of the database: readable by the backup owner only.
        os.umask(0o077)
        ensure_backup_dir(params['backup_dir'])
        if params['backup_dir_mode'] is not None:
            set_mode(self.module, params['backup_dir'], params['backup_dir_mode'])
        with DatabaseLock(params['backup_dir'], self.dbname, 'backup', params['lock_timeout']):
            result['removed_stale_partials'] = remove_stale_partials(params['backup_dir'], self.dbname)
            result['cleaned_up'] = clean_up_after_killed_runs(params, [self.dbname])
            failure = self.write(include_files, compression, data_name)
            if failure:
                return result, failure
            retention_error = self.prune()
            self.record_last_backup()
        return self.outcome(info, retention_error)

    def due(self, sets):
        """False (and the result says why) when a verified set younger than min_interval exists."""
        params, result = self.params, self.result
        verified = [entry for entry in sets if entry['verified']]
        if verified:
            result['latest_verified'] = dict((key, verified[0][key]) for key in ('id', 'age_seconds', 'path'))
        if params['min_interval'] > 0 and verified and verified[0]['age_seconds'] < params['min_interval']:
            result.update(due=False, skipped_reason='verified backup %s is %ss old, younger than min_interval (%ss)' % (
                verified[0]['id'], verified[0]['age_seconds'], params['min_interval']))
            result['msg'] = 'nothing to do: %s' % result['skipped_reason']
            return False
        return True

    def plan(self, sets):
        """The pre-checks that touch nothing (tools, connection, free space, retention policy) and the manifest's
        first part. Returns (files to include, compression plan, data file name, database info)."""
        params, result, tools, dbname = self.params, self.result, self.tools, self.dbname
        include_files = list(params['include_files'])
        if params['include_compose_files']:
            include_files = compose_project_files(params['project_dir']) + include_files
        dump_version = tool_version(self.module, tools.argv('pg_dump', ['--version']), tools.environ())
        if not dump_version:
            raise BackupError('pg_dump --version failed (%s); check tools_location/tools_bindir' % (
                'in service %s' % params['compose_service'] if tools.in_container else 'on the host'))
        compression, data_name = plan(self.module, params, pg_major(dump_version))
        try:
            info_conn = connect(params, dbname=dbname, application_name='stackops-backup')
        except Exception as exc:
            raise BackupError('cannot connect to %s: %s; check that the server is up and the credentials' % (
                describe_target(params, dbname), exc))
        with info_conn:
            server_version = info_conn.execute('SHOW server_version').fetchone()[0]
            info = database_info(info_conn, dbname)
            properties = database_properties(info_conn, dbname)
            tables = user_tables(info_conn)
        self.manifest = dict(
            manifest_version=MANIFEST_VERSION, id=self.backup_id, database=dbname, database_info=info,
            database_properties=properties, group=params['group_id'], group_databases=params['group_databases'],
            server_version=server_version, format=params['format'], compression=compression, data=data_name,
            jobs=params['jobs'], tools_location=params['tools_location'],
            tools=dict(pg_dump=dump_version), host=os.uname()[1],
            options=dict(content_checksums=params['content_checksums'], include_globals=params['include_globals'],
                         include_files=include_files, include_volumes=params['include_volumes']))
        result.update(database_size_bytes=info['size_bytes'], tables=len(tables))
        space = space_plan(params['backup_dir'], sets[0]['size_bytes'] if sets else info['size_bytes'],
                           params['free_space_factor'])
        result.update(space=space, would_create_backup_dir=not space['backup_dir_exists'])
        if params['free_space_factor'] > 0 and space['free_bytes'] < space['needed_bytes']:
            raise BackupError('only %d bytes free in %s, the backup needs about %d (free_space_factor %s x %d); free '
                              'space or point backup_dir at a larger filesystem' % (
                                  space['free_bytes'], space['measured_path'], space['needed_bytes'],
                                  params['free_space_factor'], space['expected_size_bytes']))
        retention_problem = retention_policy_problem(params['retention']) if params['retention'] else None
        if retention_problem:
            raise BackupError('retention %s' % retention_problem)
        return include_files, compression, data_name, info

    def write(self, include_files, compression, data_name):
        """The set in ``<id>.partial``: dumped, (with verify) proven, then published with its verdict in one rename.
        Anything that fails before the rename removes the partial. Returns a failure message or None."""
        params, manifest, partial = self.params, self.manifest, self.partial
        journal = RunJournal(params['backup_dir'], self.dbname)
        os.makedirs(partial)
        trial = None
        try:
            if params['verify'] and params['format'] == 'custom':
                trial = TrialWhileDumping(self.module, params, partial, manifest, journal, params['verify_jobs'])
            hashed = take_backup(self.module, params, self.tools, partial, manifest, compression, data_name,
                                 self.dbname, include_files, trial, self.phases)
            files = file_inventory(partial, known=hashed)
            manifest.update(files=files, checksum=set_checksum(files), size_bytes=sum(f['size'] for f in files.values()))
            manifest.update(started_at=isoformat(self.started), finished_at=isoformat(utcnow()),
                            duration_seconds=round(time.monotonic() - self.clock, 3))
            write_json(os.path.join(partial, MANIFEST), manifest)
            if params['verify']:
                verification = prove(self.module, params, partial, manifest, trial, journal, self.phases)
                self.result.update(verified=verification['verified'], verification=verification)
                # Published together with the set: a set is never listed before its verdict.
                record_verification(partial, verification_record(verification, trial=True))
            with timed(self.phases, 'publish'):
                publish(partial, self.final)
        except PublishedNotDurable as exc:
            self.result.update(changed=True, published=True)
            return 'backup of %s: %s' % (self.dbname, exc)
        except (IOError, OSError) as exc:
            remove_tree(partial)
            raise BackupError(describe_os_error(exc, partial))
        except BaseException:
            remove_tree(partial)
            raise
        finally:
            if trial is not None:
                trial.close()
        return None

    def prune(self):
        """Retention right after publishing, under the same lock; returns its error (the set stays published)."""
        params = self.params
        if not params['retention']:
            return None
        self.result['retention'] = dict(deleted=[], kept={}, freed_bytes=0, busy={})
        try:
            with timed(self.phases, 'retention'):
                apply_retention(params['backup_dir'], self.dbname, params['retention'], self.result['retention'],
                                delete=True)
        except (BackupError, OSError) as exc:
            return exc
        return None

    def record_last_backup(self):
        if not self.params['record_last_backup']:
            return
        manifest = self.manifest
        try:
            record_last_backup(self.params['backup_dir'], dict(
                database=self.dbname, backup_id=self.backup_id, last_backup_timestamp=manifest['finished_at'],
                size_bytes=manifest['size_bytes'], duration_seconds=manifest['duration_seconds'],
                verified=self.result.get('verified')))
        except (IOError, OSError) as exc:
            self.module.warn('backup %s is published, but last_backup.json could not be written: %s' % (
                self.backup_id, describe_os_error(exc, self.params['backup_dir'])))

    def outcome(self, info, retention_error):
        result, manifest = self.result, self.manifest
        duration = manifest['duration_seconds']
        self.phases['total'] = round(time.monotonic() - self.clock, 3)
        result.update(changed=True, size_bytes=manifest['size_bytes'], duration_seconds=duration, manifest=manifest,
                      phase_seconds=self.phases, metrics=backup_metrics(manifest, verified=bool(result.get('verified'))))
        if retention_error is not None:
            return result, ('backup %s was published, but retention in %s failed: %s; sets not yet deleted are '
                            'intact' % (self.backup_id, self.params['backup_dir'], retention_error))
        result.update(checksum=manifest['checksum'],
                      throughput_mib_per_second=round(info['size_bytes'] / 1048576.0 / max(duration, 0.001), 2),
                      msg='backup %s of %s written to %s%s' % (
                          self.backup_id, describe_target(self.params, self.dbname), self.final,
                          ', verified' if result.get('verified') else ''))
        if result.get('verified') is False:
            return result, ('backup %s of %s was written to %s but did NOT verify: %s; do not restore from it, use an '
                            'older verified backup' % (self.backup_id, self.dbname, self.final,
                                                       '; '.join(result['verification']['differences'][:5])))
        return result, None


def prove(module, params, partial, manifest, trial, journal, phases):
    """The verdict on the set written in ``partial``: the trial restore that ran while it was dumped, or, where that
    could not run (not a custom-format dump, or a stream it does not handle), a trial restore of the written set."""
    clock = time.monotonic()
    verification = None
    if trial is not None:
        # The files as they are on disk, read back while the trial restore builds its indexes.
        with timed(phases, 'checksums'):
            problems = check_files(partial, manifest)
        verification = trial.finish(manifest)
        if verification is not None:
            verification['checksums_ok'] = not problems
            verification['differences'] = problems + verification['differences']
            clock = trial.started
            for name, value in verification['phase_seconds'].items():
                phases['trial-%s' % name] = value
            phases['trial'] = round(trial.restored - trial.started, 3)
            phases['overlap'] = round(max(0.0, min(trial.restored, trial.dump_ended) - trial.started), 3)
        else:
            module.warn('%s: %s; proving it with a trial restore of the written set instead' % (
                manifest['id'], trial.unsupported))
    if verification is None:
        with timed(phases, 'trial'):
            verification = verify_set(module, params, partial, manifest, journal, params['verify_jobs'],
                                      streaming=trial is None)
    verification.setdefault('during_backup', False)
    verification['verified'] = not verification['differences']
    verification['duration_seconds'] = round(time.monotonic() - clock, 3)
    return verification
