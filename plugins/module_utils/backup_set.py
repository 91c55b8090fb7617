# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backup set on disk: its names, its files, and how it is published.

A backup set is one directory ``<backup_dir>/<id>/`` holding the dump, optional extras
and ``manifest.json``. It is written under ``<id>.partial`` and renamed only after every
file is fsynced, so a directory without the suffix is always complete. Verification
results live beside the manifest in ``verification.json`` because the manifest itself
is covered by the checksums a verify re-computes and must never change after publishing.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ctypes
import datetime
import errno
import fnmatch
import hashlib
import json
import os
import re
import shutil

from ansible_collections.stackops.runbooks.plugins.module_utils.fault import fault_point
from ansible_collections.stackops.runbooks.plugins.module_utils.pipeline import CHUNK


MANIFEST = 'manifest.json'
VERIFICATION = 'verification.json'
PARTIAL_SUFFIX = '.partial'
LOCK_DIR = '.locks'
MANIFEST_VERSION = 1


class BackupError(Exception):
    """A failure whose message already says what failed, where, and what to do next."""


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


class PublishedNotDurable(BackupError):
    """The set was renamed into place (it is complete and listed) but the directory fsync after it failed."""


def publish(partial, final):
    """fsync every byte, then make the set visible with one rename."""
    fsync_tree(partial)
    fault_point('publish')
    os.rename(partial, final)
    try:
        fsync_path(os.path.dirname(final))
    except OSError as exc:
        raise PublishedNotDurable(
            'backup set %s is published (complete and listed), but syncing its directory %s failed: %s; it may not '
            'survive a power loss. Check the filesystem, then verify the set with stackops.runbooks.pg_backup_verify'
            % (final, os.path.dirname(final), exc))


RENAME_EXCHANGE = 2  # renameat2(2) flag, Linux 3.15+
AT_FDCWD = -100


class ExchangeNotSupported(BackupError):
    """The filesystem (or the C library) cannot swap two directories in one step."""


def exchange(first, second):
    """Swap the directories ``first`` and ``second`` atomically (renameat2 RENAME_EXCHANGE): whoever looks, and a
    crash at any moment, sees either both as they were or both swapped, never a name missing. The caller fsyncs
    the parent directory to make the swap durable."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        raise ExchangeNotSupported('the C library of this host has no renameat2 (glibc 2.28 or newer has it)')
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise ExchangeNotSupported('the filesystem of %s cannot swap two directories in one step (renameat2 '
                                       'RENAME_EXCHANGE: %s)' % (os.path.dirname(first), os.strerror(code)))
        raise OSError(code, os.strerror(code), first)


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
