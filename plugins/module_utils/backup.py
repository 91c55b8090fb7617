# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup sets shared by pg_backup, pg_backup_verify, pg_backup_restore, pg_backup_retention and pg_backup_list.

A backup set is one directory ``<backup_dir>/<id>/`` holding the dump, optional extras
and ``manifest.json``. It is written under ``<id>.partial`` and renamed only after every
file is fsynced, so a directory without the suffix is always complete. Verification
results live beside the manifest in ``verification.json`` because the manifest itself
is covered by the checksums a verify re-computes and must never change after publishing.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import errno
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_command
from ansible_collections.stackops.runbooks.plugins.module_utils.pipeline import (  # noqa: F401 pylint: disable=unused-import
    CHUNK, Pipeline, describe_rc, first_failure, widen_pipe)
from ansible_collections.stackops.runbooks.plugins.module_utils.restore_stream import (
    StreamFailed, StreamNotSupported, StreamingRestore, timed)
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import (  # noqa: F401 pylint: disable=unused-import
    PgTools, conninfo_dbname, connect, describe_target, pg_connection_spec, pg_tools_spec, sql)

MANIFEST = 'manifest.json'
VERIFICATION = 'verification.json'
PARTIAL_SUFFIX = '.partial'
LOCK_DIR = '.locks'
MANIFEST_VERSION = 1

# The restore goes into a database nobody uses yet and is only put in place by a later, synchronous commit (rename or
# swap), which flushes all WAL before it: asynchronous commits lose nothing here.
RESTORE_SESSION_OPTIONS = '-c synchronous_commit=off'

# pg_dump before 16 compresses custom/directory output with zlib only.
NATIVE_METHODS_BY_MAJOR = {15: ('gzip', 'none')}
DEFAULT_LEVELS = {'zstd': 3, 'gzip': 4, 'lz4': 1, 'none': 0}
EXTENSIONS = {'zstd': '.zst', 'gzip': '.gz', 'lz4': '.lz4', 'none': ''}


class BackupError(Exception):
    """A failure whose message already says what failed, where, and what to do next."""


def backup_dir_spec():
    return dict(
        backup_dir=dict(type='path', required=True),
        lock_timeout=dict(type='int', default=300),
    )


# ---------------------------------------------------------------- names and time

def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def isoformat(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def parse_time(text):
    return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=datetime.timezone.utc)


def slug(name):
    """File-system-safe stand-in for a database name; a hash keeps distinct names distinct."""
    safe = re.sub(r'[^A-Za-z0-9_.-]', '_', name)[:48].lstrip('.') or 'db'
    if safe != name:
        safe += '-' + hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]
    return safe


def new_backup_id(database, moment):
    return '%s-%s%03dZ' % (slug(database), moment.strftime('%Y%m%dT%H%M%S'), moment.microsecond // 1000)


def valid_backup_id(backup_id):
    return bool(backup_id) and '/' not in backup_id and backup_id not in ('.', '..') and not backup_id.startswith('.')


def scratch_name(prefix, suffix):
    """A database name below PostgreSQL's 63-byte limit that still shows what it is for."""
    head = prefix.encode('utf-8')[:40].decode('utf-8', 'ignore')
    return '%s_%s_%s' % (head, suffix, os.urandom(4).hex())


# ---------------------------------------------------------------- files

def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def relative_files(root, skip=(MANIFEST, VERIFICATION)):
    """Paths (relative to ``root``) of the regular files under it, in a stable order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if rel not in skip:
                yield rel


def file_inventory(root, skip=(MANIFEST, VERIFICATION), known=None):
    """{relative path: {size, sha256}} for every regular file under ``root``; ``known`` digests are not re-read."""
    known = known or {}
    files = {}
    for rel in relative_files(root, skip):
        full = os.path.join(root, rel)
        files[rel] = dict(size=os.path.getsize(full), sha256=known.get(rel) or sha256_file(full))
    return files


def set_checksum(files):
    """One checksum for a whole set: the sha256 of its sorted ``sha256  path`` lines."""
    lines = ''.join('%s  %s\n' % (files[rel]['sha256'], rel) for rel in sorted(files))
    return hashlib.sha256(lines.encode('utf-8')).hexdigest()


def fsync_path(path):
    flags = os.O_RDONLY | (os.O_DIRECTORY if os.path.isdir(path) else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root):
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            fsync_path(os.path.join(dirpath, name))
        fsync_path(dirpath)


def write_json(path, data):
    """Write JSON through a temp file (mode 0600) and rename, so readers never see half a document."""
    tmp = '%s.tmp-%d' % (path, os.getpid())
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'w') as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write('\n')
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(tmp, path)
    fsync_path(os.path.dirname(path) or '.')


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def publish(partial, final):
    """fsync every byte, then make the set visible with one rename."""
    fsync_tree(partial)
    os.rename(partial, final)
    fsync_path(os.path.dirname(final))


def remove_tree(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def ensure_backup_dir(path):
    try:
        os.makedirs(os.path.join(path, LOCK_DIR), exist_ok=True)
    except OSError as exc:
        raise BackupError('cannot create backup directory %s: %s; create it or fix its permissions' % (path, exc))


def nearest_existing_dir(path):
    """``path`` or its nearest existing parent: the filesystem a directory that is missing would be created on."""
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def space_plan(backup_dir, expected_bytes, factor):
    """Free space on the backup filesystem against ``factor`` x the expected backup size (measured for real, also
    when ``backup_dir`` does not exist yet: on the nearest existing parent)."""
    measured = nearest_existing_dir(backup_dir)
    stat = os.statvfs(measured)
    expected = int(expected_bytes or 0)
    return dict(backup_dir_exists=os.path.isdir(backup_dir), measured_path=measured,
                free_bytes=stat.f_bavail * stat.f_frsize, expected_size_bytes=expected,
                needed_bytes=int(expected * factor))


COMPOSE_FILE_PATTERNS = ('compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml', 'compose.*.yaml',
                         'compose.*.yml')


def compose_project_files(project_dir):
    """The compose files directly in ``project_dir``, sorted (what a backup set stores beside the dump)."""
    if not project_dir or not os.path.isdir(project_dir):
        return []
    names = set()
    for name in os.listdir(project_dir):
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in COMPOSE_FILE_PATTERNS):
            if os.path.isfile(os.path.join(project_dir, name)):
                names.add(name)
    return [os.path.join(project_dir, name) for name in sorted(names)]


LAST_BACKUP = 'last_backup.json'


def record_last_backup(backup_dir, record):
    """``<backup_dir>/last_backup.json``: the newest backup written, for monitoring that reads no manifests."""
    write_json(os.path.join(backup_dir, LAST_BACKUP), record)


def mark_last_backup_verified(backup_dir, backup_id, verified):
    """Set ``verified`` in last_backup.json when it describes ``backup_id`` (pg_backup_verify calls this)."""
    path = os.path.join(backup_dir, LAST_BACKUP)
    try:
        record = read_json(path)
    except (IOError, OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get('backup_id') != backup_id:
        return False
    record['verified'] = bool(verified)
    write_json(path, record)
    return True


def describe_os_error(exc, where):
    if getattr(exc, 'errno', None) == errno.ENOSPC:
        return 'no space left on device while writing %s; free space or point backup_dir at a larger filesystem' % where
    return '%s while writing %s' % (exc, where)


# ---------------------------------------------------------------- locking

class LockTimeout(BackupError):
    pass


class DatabaseLock(object):
    """flock on ``<backup_dir>/.locks/<db>.lock``: backups, verifies, restores and retention of one database
    run one at a time. The holder writes who it is into the file so a waiter can name it."""

    def __init__(self, backup_dir, database, operation, timeout):
        self.path = os.path.join(backup_dir, LOCK_DIR, slug(database) + '.lock')
        self.database = database
        self.operation = operation
        self.timeout = timeout
        self.handle = None

    def holder(self):
        try:
            with open(self.path) as handle:
                info = json.loads(handle.read() or '{}')
        except (IOError, OSError, ValueError):
            return 'an unknown process'
        return '%s (pid %s on %s, since %s)' % (
            info.get('operation', '?'), info.get('pid', '?'), info.get('host', '?'), info.get('since', '?'))

    def try_acquire(self):
        self.handle = open(self.path, 'a+')
        try:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError):
            self.handle.close()
            self.handle = None
            return False
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(json.dumps(dict(operation=self.operation, pid=os.getpid(), host=socket.gethostname(),
                                          since=isoformat(utcnow()), database=self.database)))
        self.handle.flush()
        return True

    def acquire(self):
        deadline = time.monotonic() + max(self.timeout, 0)
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    'database %r is locked by %s; %s waited %ss for lock file %s. Wait for it to finish or raise '
                    'lock_timeout; if no such process exists, the lock is released automatically' % (
                        self.database, self.holder(), self.operation, self.timeout, self.path))
            time.sleep(0.2)
        return self

    def release(self):
        if self.handle:
            # Empty the holder record before unlocking so a waiter never names a finished holder.
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.flush()
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None

    def is_held_elsewhere(self):
        if not os.path.exists(self.path):
            return False
        if self.try_acquire():
            self.release()
            return False
        return True

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class LockSet(object):
    """Several database locks taken in name order, so two operations can never deadlock."""

    def __init__(self, backup_dir, databases, operation, timeout):
        self.locks = [DatabaseLock(backup_dir, name, operation, timeout) for name in sorted(set(databases))]

    def __enter__(self):
        taken = []
        try:
            for lock in self.locks:
                taken.append(lock.acquire())
        except Exception:
            for lock in taken:
                lock.release()
            raise
        return self

    def __exit__(self, *exc):
        for lock in reversed(self.locks):
            lock.release()


# ---------------------------------------------------------------- catalog

def load_manifest(set_dir):
    path = os.path.join(set_dir, MANIFEST)
    try:
        manifest = read_json(path)
    except (IOError, OSError) as exc:
        raise BackupError('cannot read manifest %s: %s; this is not a complete backup set' % (path, exc))
    except ValueError as exc:
        raise BackupError('manifest %s is not valid JSON (%s); the backup set is damaged, use another backup' % (path, exc))
    if manifest.get('manifest_version') != MANIFEST_VERSION:
        raise BackupError('manifest %s has version %r, this collection reads version %d' % (
            path, manifest.get('manifest_version'), MANIFEST_VERSION))
    return manifest


def load_verification(set_dir):
    try:
        return read_json(os.path.join(set_dir, VERIFICATION))
    except (IOError, OSError, ValueError):
        return None


def record_verification(set_dir, result):
    write_json(os.path.join(set_dir, VERIFICATION), result)


def check_files(set_dir, manifest, known=None, sizes_only=False):
    """Compare every file against the manifest; returns a list of human-readable problems.

    ``known`` holds sha256 digests already computed while the file was read for another purpose (decompressing it
    for a restore), so it is not read twice; ``sizes_only`` compares presence and sizes, no digests.
    """
    problems = []
    known = known or {}
    expected = manifest.get('files') or {}
    if not expected:
        problems.append('manifest lists no files')
    for rel, meta in sorted(expected.items()):
        full = os.path.join(set_dir, rel)
        if not os.path.isfile(full):
            problems.append('%s: missing' % rel)
            continue
        size = os.path.getsize(full)
        if size != meta['size']:
            problems.append('%s: size %d, manifest says %d' % (rel, size, meta['size']))
            continue
        if sizes_only:
            continue
        digest = known.get(rel) or sha256_file(full)
        if digest != meta['sha256']:
            problems.append('%s: sha256 %s, manifest says %s' % (rel, digest, meta['sha256']))
    actual = set(relative_files(set_dir)) if os.path.isdir(set_dir) else set()
    for rel in sorted(actual - set(expected)):
        problems.append('%s: not in manifest' % rel)
    return problems


def catalog(backup_dir, database=None, now=None):
    """Complete sets (newest first) and the in-progress/abandoned ``.partial`` ones."""
    now = now or utcnow()
    sets, partials = [], []
    if not os.path.isdir(backup_dir):
        return sets, partials
    for name in sorted(os.listdir(backup_dir)):
        full = os.path.join(backup_dir, name)
        if name.startswith('.') or not os.path.isdir(full):
            continue
        if name.endswith(PARTIAL_SUFFIX):
            partials.append(dict(id=name[:-len(PARTIAL_SUFFIX)], path=full))
            continue
        try:
            manifest = load_manifest(full)
        except BackupError as exc:
            partials.append(dict(id=name, path=full, problem=str(exc)))
            continue
        if database is not None and manifest['database'] != database:
            continue
        verification = load_verification(full)
        started = parse_time(manifest['started_at'])
        sets.append(dict(
            id=manifest['id'], path=full, database=manifest['database'], started_at=manifest['started_at'],
            finished_at=manifest['finished_at'], age_seconds=int((now - started).total_seconds()),
            size_bytes=manifest['size_bytes'], format=manifest['format'], compression=manifest['compression']['method'],
            tables=len(manifest.get('tables') or []), rows=sum(t['rows'] for t in manifest.get('tables') or []),
            verified=None if verification is None else bool(verification.get('verified')),
            verified_at=(verification or {}).get('verified_at'), checksum=manifest.get('checksum'),
        ))
    sets.sort(key=lambda entry: entry['started_at'], reverse=True)
    return sets, partials


def find_set(backup_dir, backup_id=None, database=None, verified_only=False):
    """The set named ``backup_id``, or the newest (verified) one of ``database``."""
    if backup_id:
        if not valid_backup_id(backup_id):
            raise BackupError('backup_id %r is not a backup id (a directory name inside %s)' % (backup_id, backup_dir))
        path = os.path.join(backup_dir, backup_id)
        if not os.path.isdir(path):
            raise BackupError('backup %s not found in %s; list the catalog with stackops.runbooks.pg_backup_list' % (
                backup_id, backup_dir))
        return path, load_manifest(path)
    if not database:
        raise BackupError('give backup_id or database so the backup to use can be chosen')
    sets, dummy = catalog(backup_dir, database)
    candidates = [entry for entry in sets if entry['verified'] or not verified_only]
    if not candidates:
        raise BackupError('no %sbackup of database %r in %s; run stackops.runbooks.pg_backup%s first or give backup_id' % (
            'verified ' if verified_only else '', database, backup_dir, '_verify' if verified_only and sets else ''))
    return candidates[0]['path'], load_manifest(candidates[0]['path'])


# ---------------------------------------------------------------- retention

def retention_plan(sets, keep_last, keep_daily, keep_weekly, keep_monthly):
    """Grandfather-father-son selection over complete sets of one database.

    ``sets`` is newest first. Returns ({id: [reasons]}, [ids to delete]). The newest verified
    set is always kept: deleting it would leave nothing proven restorable.
    """
    keep = {}

    def mark(entry, reason):
        keep.setdefault(entry['id'], []).append(reason)

    for entry in sets[:max(keep_last, 0)]:
        mark(entry, 'last')
    for label, count, bucket in (
            ('daily', keep_daily, lambda m: m.strftime('%Y-%m-%d')),
            ('weekly', keep_weekly, lambda m: '%04d-W%02d' % m.isocalendar()[:2]),
            ('monthly', keep_monthly, lambda m: m.strftime('%Y-%m'))):
        seen = []
        for entry in sets:
            key = bucket(parse_time(entry['started_at']))
            if key in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(key)
            mark(entry, label)
    for entry in sets:
        if entry.get('verified'):
            mark(entry, 'newest verified')
            break
    delete = [entry['id'] for entry in sets if entry['id'] not in keep]
    return keep, delete


def retention_policy_spec():
    """keep_last/keep_daily/keep_weekly/keep_monthly: pg_backup_retention's options and pg_backup's retention."""
    return dict(
        keep_last=dict(type='int', default=7),
        keep_daily=dict(type='int', default=7),
        keep_weekly=dict(type='int', default=4),
        keep_monthly=dict(type='int', default=3),
    )


def retention_policy_problem(policy):
    """Why a keep_last/keep_daily/keep_weekly/keep_monthly policy cannot be applied, or None."""
    if min(policy[key] for key in retention_policy_spec()) < 0:
        return 'keep_last/keep_daily/keep_weekly/keep_monthly must be 0 or more'
    return None


def apply_retention(backup_dir, database, policy, result, delete):
    """Apply ``policy`` (keep_last/keep_daily/keep_weekly/keep_monthly) to the sets of ``database``; the caller holds
    its lock. Adds to ``result`` (``kept``, ``deleted``, ``freed_bytes``); ``delete=False`` only plans."""
    # The catalog is re-read under the lock: a backup may have been published since the first look.
    sets, dummy = catalog(backup_dir, database)
    keep, doomed = retention_plan(sets, policy['keep_last'], policy['keep_daily'], policy['keep_weekly'],
                                  policy['keep_monthly'])
    result['kept'].update(keep)
    by_id = dict((entry['id'], entry) for entry in sets)
    for backup_id in doomed:
        if delete:
            # Renamed out of the catalog first, so a crash mid-delete never leaves a half set that looks complete.
            doomed_path = os.path.join(backup_dir, '.deleting-' + backup_id)
            os.rename(os.path.join(backup_dir, backup_id), doomed_path)
            remove_tree(doomed_path)
        result['deleted'].append(backup_id)
        result['freed_bytes'] += by_id[backup_id]['size_bytes']


# ---------------------------------------------------------------- database content

def user_tables(conn):
    """Ordinary tables outside system and extension schemas, as (schema, name) pairs."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%' "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
        "AND d.objid = c.oid AND d.deptype = 'e') ORDER BY 1, 2").fetchall()
    return [(row[0], row[1]) for row in rows]


def table_stats(conn, tables, content=False):
    """Exact row counts and optionally an order-independent content checksum per table.

    The checksum sums two 60-bit slices of md5(row::text) over all rows: it needs no sort
    and no memory proportional to the table, and a changed, missing or extra row changes it.
    """
    stats = []
    for schema, name in tables:
        ident = sql.Identifier(schema, name)
        if content:
            query = sql.SQL(
                "SELECT count(*), coalesce(sum(('x' || substr(h, 1, 15))::bit(60)::bigint::numeric), 0)::text || '-' || "
                "coalesce(sum(('x' || substr(h, 16, 15))::bit(60)::bigint::numeric), 0)::text "
                "FROM (SELECT md5(t::text) AS h FROM {} AS t) AS s").format(ident)
        else:
            query = sql.SQL("SELECT count(*), NULL FROM {}").format(ident)
        count, checksum = conn.execute(query).fetchone()
        entry = dict(schema=schema, name=name, rows=int(count))
        if content:
            entry['content_checksum'] = checksum
        stats.append(entry)
    return stats


def compare_tables(expected, actual, content=True):
    """Differences between manifest tables and a restored database, as readable strings."""
    differences = []
    have = dict(((t['schema'], t['name']), t) for t in actual)
    for table in expected:
        key = (table['schema'], table['name'])
        label = '%s.%s' % key
        got = have.pop(key, None)
        if got is None:
            differences.append('%s: missing after restore' % label)
            continue
        if got['rows'] != table['rows']:
            differences.append('%s: %d rows after restore, manifest says %d' % (label, got['rows'], table['rows']))
        elif content and table.get('content_checksum') and got.get('content_checksum') != table['content_checksum']:
            differences.append('%s: content checksum differs from the manifest' % label)
    for key in sorted(have):
        differences.append('%s.%s: present after restore but not in the manifest' % key)
    return differences


def database_exists(conn, name):
    return conn.execute('SELECT 1 FROM pg_database WHERE datname = %s', (name,)).fetchone() is not None


def create_database(conn, name, like=None):
    """CREATE DATABASE from template0 with the encoding and locale of ``like`` (a manifest 'database_info')."""
    query = sql.SQL('CREATE DATABASE {} TEMPLATE template0').format(sql.Identifier(name))
    if like:
        query += sql.SQL(' ENCODING {} LC_COLLATE {} LC_CTYPE {}').format(
            sql.Literal(like['encoding']), sql.Literal(like['collate']), sql.Literal(like['ctype']))
        if like.get('owner'):
            query += sql.SQL(' OWNER {}').format(sql.Identifier(like['owner']))
    conn.execute(query)


def drop_database(conn, name):
    conn.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(name)))


def recreate_database(params, admin, name, like, application_name):
    """Drop ``name`` and create it empty again (a restore that has to start over)."""
    with connect(params, dbname=admin, application_name=application_name) as conn:
        drop_database(conn, name)
        create_database(conn, name, like=like)


def database_info(conn, name):
    row = conn.execute(
        "SELECT pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, r.rolname, pg_database_size(d.oid) "
        "FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = %s", (name,)).fetchone()
    if row is None:
        return None
    return dict(encoding=row[0], collate=row[1], ctype=row[2], owner=row[3], size_bytes=int(row[4]))


# ---------------------------------------------------------------- processes

def stream_to_file(stages, env, target, digest=None):
    """Run ``stages`` (argv lists) as a pipeline and copy the last stdout into ``target``.

    We copy in Python rather than redirect so the sha256 is computed while writing and a
    full disk surfaces as an OSError we can name. Returns (bytes written, [(argv, rc, stderr)]).
    """
    pipeline = Pipeline(stages, env)
    written = 0
    write_error = None
    try:
        with open(target, 'wb') as out:
            for chunk in iter(lambda: pipeline.stdout.read(CHUNK), b''):
                out.write(chunk)
                if digest is not None:
                    digest.update(chunk)
                written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    except (IOError, OSError) as exc:
        write_error = exc
        pipeline.kill()
    finally:
        results = pipeline.wait()
    if write_error is not None:
        raise BackupError(describe_os_error(write_error, target))
    return written, results


def compressor_argv(module, method, level, decompress=False):
    """Host-side (de)compressor argv; pigz and zstd -T0 use every core because compression is the bottleneck."""
    if method == 'zstd':
        tool = module.get_bin_path('zstd')
        argv = [tool, '-d', '-q', '-c'] if decompress else [tool, '-q', '-c', '-T0', '-%d' % level]
    elif method == 'lz4':
        tool = module.get_bin_path('lz4')
        argv = [tool, '-d', '-q', '-c'] if decompress else [tool, '-q', '-c', '-%d' % level]
    elif method == 'gzip':
        tool = module.get_bin_path('pigz') or module.get_bin_path('gzip')
        argv = [tool, '-d', '-c'] if decompress else [tool, '-c', '-%d' % level]
    else:
        return None
    if not tool:
        raise BackupError('%s is not installed on the host; install it (apt-get install %s) or choose another '
                          'compression' % (method, 'pigz' if method == 'gzip' else method))
    return argv


def tool_version(module, argv, env=None):
    rc, out, err = module.run_command(argv, environ_update=env or {})
    if rc != 0:
        return None
    return (out or err).strip().splitlines()[0] if (out or err).strip() else None


def pg_major(version_text):
    match = re.search(r'(\d+)(?:\.(\d+))?', version_text or '')
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------- restoring

TABLE_ENTRY_TYPES = ('TABLE', 'TABLE DATA', 'DEFAULT', 'COMMENT', 'SEQUENCE', 'SEQUENCE OWNED BY', 'SEQUENCE SET')


def parse_table_name(text):
    """'schema.table' or 'table' (public); a quoted part may contain dots: '"my.schema"."T"'."""
    parts, current, quoted, index = [], '', False, 0
    while index < len(text):
        char = text[index]
        if char == '"':
            if quoted and text[index + 1:index + 2] == '"':
                current += '"'
                index += 1
            else:
                quoted = not quoted
        elif char == '.' and not quoted:
            parts.append(current)
            current = ''
        else:
            current += char
        index += 1
    parts.append(current)
    if quoted or len(parts) > 2 or not all(parts):
        raise BackupError('table %r is not "schema.table" or "table"; quote parts that contain dots with double quotes' % text)
    return tuple(parts) if len(parts) == 2 else ('public', parts[0])


def select_toc(toc_text, tables, schemas):
    """Keep the pg_restore -l entries that make up the chosen tables and schemas.

    A line is ``id; tableoid oid TYPE schema name owner``; names may contain spaces, so
    entries are matched by prefix against each wanted (type, schema, name) instead of split.
    """
    wanted_schemas = set(schemas)
    needed_schemas = set(wanted_schemas) | set(schema for schema, dummy in tables)
    kept = []
    for line in toc_text.splitlines():
        if not line.strip() or line.startswith(';'):
            continue
        head, sep, rest = line.partition('; ')
        fields = rest.split(' ', 2)
        if not sep or len(fields) < 3:
            continue
        entry = fields[2]
        # Extensions come along whatever is chosen: restored columns may use their types.
        keep = entry.startswith('EXTENSION ') or entry.startswith('COMMENT - EXTENSION ')
        keep = keep or any(entry.startswith('SCHEMA - %s ' % schema) for schema in needed_schemas)
        keep = keep or any(entry.startswith('%s %s ' % (kind, schema)) for schema in wanted_schemas
                           for kind in TABLE_ENTRY_TYPES + ('INDEX', 'CONSTRAINT', 'FK CONSTRAINT', 'VIEW', 'FUNCTION',
                                                            'TRIGGER', 'TYPE', 'DOMAIN', 'MATERIALIZED VIEW', 'ACL'))
        keep = keep or any(entry.startswith('%s %s %s ' % (kind, schema, name)) for schema, name in tables
                           for kind in TABLE_ENTRY_TYPES)
        if keep:
            kept.append(line)
    return kept


class RestoreSession(object):
    """Restores one backup set into a database through pg_restore or psql.

    A whole custom-format dump is streamed (restore_stream): decompressed on the fly, its rows loaded over
    ``jobs`` connections, its indexes built side by side. Everything else restores from a file path: a set
    compressed outside pg_dump is first decompressed into ``work_dir`` so pg_restore can seek in it
    (``--jobs``), and in compose mode the file is copied into the database container, because the tools
    there cannot see host paths.
    """

    def __init__(self, module, params, set_dir, manifest, work_dir=None, selective=False):
        self.module = module
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
            self.compose(['exec', '-T', self.params['compose_service'], 'mkdir', '-p', self.container_tmp],
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
        if self.streams:
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
        digest = hashlib.sha256()
        err = tempfile.TemporaryFile()
        try:
            with open(target, 'wb') as out:
                proc = subprocess.Popen(compressor_argv(self.module, method, 0, decompress=True), stdin=subprocess.PIPE,
                                        stdout=out, stderr=err, close_fds=True)
                widen_pipe(proc.stdin)
                feeding = True
                try:
                    with open(data, 'rb') as source:
                        for chunk in iter(lambda: source.read(CHUNK), b''):
                            digest.update(chunk)
                            if feeding:
                                try:
                                    proc.stdin.write(chunk)
                                except (IOError, OSError):
                                    feeding = False  # the decompressor died; keep hashing to name a damaged file
                finally:
                    try:
                        proc.stdin.close()  # EOF for the decompressor, also when reading failed
                    except (IOError, OSError):
                        pass
                    rc = proc.wait()
            err.seek(0)
            detail = err.read().decode('utf-8', 'replace').strip()
        except (IOError, OSError) as exc:
            raise BackupError('decompressing %s: %s' % (data, describe_os_error(exc, target)))
        finally:
            err.close()
        expected = ((self.manifest.get('files') or {}).get(self.manifest['data']) or {}).get('sha256')
        # A damaged file makes the decompressor fail too; the checksum mismatch is the better message for that.
        if rc != 0 and digest.hexdigest() == expected:
            raise BackupError('decompressing %s failed (%s): %s' % (data, describe_rc(rc), detail[-1000:]))
        self.staged = target
        return digest.hexdigest()

    def stage(self):
        """Stage the dump without checking it (callers that checked the set under the same lock)."""
        if self.compressed_outside_pg_dump():
            self.decompress()
        return self.point_at_dump()

    def restore(self, dbname, jobs=1, tables=(), schemas=(), no_owner=False, recreate=None):
        """Restore into the existing, empty ``dbname``. ``recreate`` (drop and create it again) lets a streamed
        restore that meets something it does not handle start over the classic way."""
        where = describe_target(self.params, dbname)
        if self.streams and self.source is None and not (tables or schemas):
            try:
                self.restore_streaming(dbname, jobs, no_owner)
                self.method = 'stream'
                return
            except StreamNotSupported as exc:
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
            return
        args = self.tools.connection_args(conninfo_dbname(dbname)) + ['--exit-on-error', '-j', str(max(jobs, 1))]
        if no_owner:
            args += ['--no-owner', '--no-privileges']
        if tables or schemas:
            listing = self.run(self.tools.argv('pg_restore', ['-l', self.source]), 'pg_restore -l of %s' % self.source)
            kept = select_toc(listing, tables, schemas)
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

    def restore_streaming(self, dbname, jobs, no_owner):
        path = os.path.join(self.set_dir, self.manifest['data'])
        if self.compressed_outside_pg_dump():
            source = compressor_argv(self.module, self.manifest['compression']['method'], 0, decompress=True)
        elif self.tools.in_container:
            source = [self.module.get_bin_path('cat', required=True)]  # the container cannot see host paths
        else:
            source = None
        restore = StreamingRestore(self.tools, self.params, path, source, dbname, jobs, self.scratch_dir(),
                                   options=RESTORE_SESSION_OPTIONS, no_owner=no_owner)
        try:
            restore.run()
        finally:
            self.timings.update(restore.timings)

    def scratch_dir(self):
        """This session's directory in ``work_dir`` (a decompressed dump, list files), made on first use."""
        if self.host_tmp is None:
            self.host_tmp = tempfile.mkdtemp(prefix='.stackops-restore-', dir=self.work_dir)
        return self.host_tmp

    def cleanup(self):
        if self.container_tmp:
            self.module.run_command(compose_command(self.module, self.params, [
                'exec', '-T', self.params['compose_service'], 'rm', '-rf', self.container_tmp]))
            self.container_tmp = None
        if self.host_tmp:
            remove_tree(self.host_tmp)
            self.host_tmp = None


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
    with connect(params, dbname=dbname, application_name='stackops-verify') as conn:
        present = set(user_tables(conn))
        actual = table_stats(conn, sorted(present), content=use_content) if not (tables or schemas) else \
            table_stats(conn, sorted(present & set((t['schema'], t['name']) for t in expected)), content=use_content)
    return compare_tables(expected, actual, content=use_content), use_content


def admin_db(params, *avoid):
    """A database to run CREATE/DROP/RENAME from that is not one of those being changed."""
    for name in (params['login_db'], 'postgres', 'template1'):
        if name not in avoid:
            return name
    return 'template1'


def restore_session_spec():
    """Options of a RestoreSession, taken by pg_backup_restore and pg_backup_verify (doc fragment
    stackops.runbooks.postgres.restore_session)."""
    return dict(
        jobs=dict(type='int', default=2),
        streaming=dict(type='bool', default=True),
        no_owner=dict(type='bool', default=False),
        work_dir=dict(type='path'),
    )


def common_module_spec():
    """Options every backup module takes, so module_defaults on the postgresql group apply to all five."""
    spec = pg_connection_spec()
    spec.update(pg_tools_spec())
    spec.update(backup_dir_spec())
    return spec
