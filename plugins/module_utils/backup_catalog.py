# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifests and the catalog of backup sets: reading, checking and finding sets, and the options naming the catalog."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    MANIFEST, MANIFEST_VERSION, PARTIAL_SUFFIX, VERIFICATION, BackupError, parse_time, read_json, relative_files,
    sha256_file, slug, utcnow, valid_backup_id, write_json)


METRICS = (
    ('stackops_backup_last_success_timestamp_seconds', 'End of the last successful backup.'),
    ('stackops_backup_last_size_bytes', 'Size of the last backup set.'),
    ('stackops_backup_last_duration_seconds', 'Duration of the last backup.'),
    ('stackops_backup_last_verified', 'Whether the last backup verified (1) or not (0).'),
)


def backup_metrics(manifest, verified):
    """The Prometheus textfile (node_exporter's textfile collector) of a database's newest set."""
    # JSON string escaping is what the exposition format wants for label values (backslash, quote, newline).
    label = '{database=%s}' % json.dumps(manifest['database'], ensure_ascii=False)
    values = (int(parse_time(manifest['finished_at']).timestamp()), manifest.get('size_bytes') or 0,
              manifest.get('duration_seconds') or 0, 1 if verified else 0)
    return ''.join('# HELP %s %s\n# TYPE %s gauge\n%s%s %s\n' % (name, text, name, name, label, value)
                   for (name, text), value in zip(METRICS, values))


def catalog_spec():
    """backup_dir: the option of the catalog action group (meta/runtime.yml), the one every backup module takes."""
    return dict(backup_dir=dict(type='path', required=True))


def backup_dir_spec():
    """The catalog, and lock_timeout for the modules that take a database's lock."""
    spec = catalog_spec()
    spec.update(lock_timeout=dict(type='int', default=300))
    return spec


def load_manifest(set_dir):
    path = os.path.join(set_dir, MANIFEST)
    try:
        manifest = read_json(path)
    except (IOError, OSError) as exc:
        raise BackupError('cannot read manifest %s: %s; this is not a complete backup set' % (path, exc))
    except ValueError as exc:
        raise BackupError('manifest %s is not valid JSON (%s); the backup set is damaged, use another backup' % (path, exc))
    if not isinstance(manifest, dict):
        raise BackupError('manifest %s is not a JSON object; the backup set is damaged, use another backup' % path)
    if manifest.get('manifest_version') != MANIFEST_VERSION:
        raise BackupError('manifest %s has version %r, this collection reads version %d' % (
            path, manifest.get('manifest_version'), MANIFEST_VERSION))
    problem = manifest_problem(manifest)
    if problem:
        raise BackupError('manifest %s %s; refusing the set, use another backup' % (path, problem))
    return manifest


# Keys every reader of a manifest uses without checking, with the JSON types they must have.
MANIFEST_FIELDS = (('id', str), ('database', str), ('started_at', str), ('finished_at', str), ('format', str),
                   ('data', str), ('files', dict), ('size_bytes', int), ('compression', dict))


def manifest_problem(manifest):
    """Why a manifest cannot be used as it is, or None: a missing or mistyped field, or a file name that would
    make a restore read (or a check hash) a file outside its set."""
    for key, kind in MANIFEST_FIELDS:
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            return 'has no valid %r field' % key
    if not isinstance(manifest['compression'].get('method'), str):
        return "has no valid 'compression.method' field"
    try:
        parse_time(manifest['started_at'])
    except ValueError:
        return 'has started_at %r, which is not a timestamp' % manifest['started_at']
    encryption = manifest.get('encryption')
    if encryption is not None:
        problem = encryption_problem(manifest)
        if problem:
            return problem
    plain = encryption['files'] if encryption else manifest['files']
    names = [manifest['data']] + list(manifest['files']) + list(plain)
    for name in names:
        problem = unsafe_path(name)
        if problem:
            return 'names file %r, %s' % (name, problem)
    if manifest['format'] != 'directory' and manifest['data'] not in plain:
        return 'names data file %r that its file list does not have' % manifest['data']
    for name, meta in list(manifest['files'].items()) + list(plain.items()):
        if not (isinstance(meta, dict) and isinstance(meta.get('size'), int) and isinstance(meta.get('sha256'), str)):
            return 'has no size and sha256 for file %r' % name
    tables = manifest.get('tables') or []
    if not isinstance(tables, list) or not all(isinstance(t, dict) and isinstance(t.get('rows'), int) and
                                               isinstance(t.get('schema'), str) and isinstance(t.get('name'), str)
                                               for t in tables):
        return 'has a table list without schema, name and rows'
    return None


def encryption_problem(manifest):
    """Why the ``encryption`` block of an encrypted set (encryption.encrypt_set) cannot be used, or None: every
    plaintext file must be stored as exactly one ``<name><suffix>`` and nothing else."""
    encryption = manifest['encryption']
    if not isinstance(encryption, dict) or encryption.get('method') != 'age':
        return 'has an encryption block this collection cannot decrypt (age only)'
    recipients = encryption.get('recipients')
    if not (isinstance(recipients, list) and recipients and all(isinstance(r, str) for r in recipients)):
        return 'names no age recipients for its encryption'
    if not isinstance(encryption.get('files'), dict) or not isinstance(encryption.get('size_bytes'), int):
        return 'has no plaintext file list in its encryption block'
    suffix = encryption.get('suffix')
    if not isinstance(suffix, str) or not suffix:
        return 'has no file suffix in its encryption block'
    if sorted(rel + suffix for rel in encryption['files']) != sorted(manifest['files']):
        return 'lists encrypted files that differ from its plaintext file list'
    return None


def plaintext_files(manifest):
    """{name: {size, sha256}} of the set's plaintext (an encrypted set's as it was before encryption)."""
    return (manifest.get('encryption') or {}).get('files') or manifest.get('files') or {}


def unsafe_path(name):
    """Why ``name`` cannot be a file inside a set: absolute, climbing out with '..', or empty; None if it is fine."""
    if not name or '\0' in name:
        return 'an empty name'
    if os.path.isabs(name):
        return 'an absolute path outside the set'
    parts = name.replace(os.sep, '/').split('/')
    if '..' in parts:
        return "a path climbing out of the set with '..'"
    return None


def identity_problem(name, manifest):
    """Why the set in directory ``name`` is not what its manifest says (copied or renamed by hand), or None.
    Such a set is foreign: listed as invalid, never restored from, never deleted by retention."""
    if manifest['id'] != name:
        return 'manifest id %r differs from its directory name %r' % (manifest['id'], name)
    if not re.match(re.escape(slug(manifest['database'])) + r'-\d{8}T\d{9}Z$', name):
        return 'manifest database %r does not match its directory name %r' % (manifest['database'], name)
    return None


STALE_VERIFICATION = re.compile(re.escape(VERIFICATION) + r'\.tmp-\d+$')


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
    # A verification.json.tmp-<pid> is what a verify killed while recording its result leaves; it is not part of
    # the set (verification.json never is) and must not make the set look damaged.
    actual = set(rel for rel in actual if not STALE_VERIFICATION.match(rel))
    for rel in sorted(actual - set(expected)):
        problems.append('%s: not in manifest' % rel)
    return problems


def catalog(backup_dir, database=None, now=None):
    """Complete sets (newest first) and the in-progress/abandoned ``.partial`` ones."""
    sets, partials, dummy = scan(backup_dir, database, now)
    return sets, partials


def scan(backup_dir, database=None, now=None):
    """catalog(), and the invalid sets: a directory whose manifest is missing, damaged or foreign (see
    identity_problem). An invalid set is only reported; nothing reads its files or deletes it."""
    now = now or utcnow()
    sets, partials, invalid = [], [], []
    if not os.path.isdir(backup_dir):
        return sets, partials, invalid
    for name in sorted(os.listdir(backup_dir)):
        full = os.path.join(backup_dir, name)
        if name.startswith('.') or not os.path.isdir(full):
            continue
        if name.endswith(PARTIAL_SUFFIX):
            partials.append(dict(id=name[:-len(PARTIAL_SUFFIX)], path=full))
            continue
        try:
            manifest = load_manifest(full)
            problem = identity_problem(name, manifest)
            if problem:
                raise BackupError('%s; the set is foreign and is left alone' % problem)
        except BackupError as exc:
            invalid.append(dict(id=name, path=full, problem=str(exc)))
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
            group=manifest.get('group'), group_databases=manifest.get('group_databases') or [],
            has_globals='globals.sql' in plaintext_files(manifest),
            encrypted=bool(manifest.get('encryption')),
            encryption_recipients=(manifest.get('encryption') or {}).get('recipients') or [],
        ))
    sets.sort(key=lambda entry: entry['started_at'], reverse=True)
    return sets, partials, invalid


def find_set(backup_dir, backup_id=None, database=None, verified_only=False):
    """The set named ``backup_id``, or the newest (verified) one of ``database``."""
    if backup_id:
        if not valid_backup_id(backup_id):
            raise BackupError('backup_id %r is not a backup id (a directory name inside %s)' % (backup_id, backup_dir))
        path = os.path.join(backup_dir, backup_id)
        if not os.path.isdir(path):
            raise BackupError('backup %s not found in %s; list the catalog with stackops.runbooks.pg_backup_info' % (
                backup_id, backup_dir))
        manifest = load_manifest(path)
        problem = identity_problem(backup_id, manifest)
        if problem:
            raise BackupError('backup %s in %s is foreign: %s; refusing to use it' % (backup_id, backup_dir, problem))
        return path, manifest
    if not database:
        raise BackupError('give backup_id or database so the backup to use can be chosen')
    sets, dummy = catalog(backup_dir, database)
    candidates = [entry for entry in sets if entry['verified'] or not verified_only]
    if not candidates:
        raise BackupError('no %sbackup of database %r in %s; run stackops.runbooks.pg_backup%s first or give backup_id' % (
            'verified ' if verified_only else '', database, backup_dir, '_verify' if verified_only and sets else ''))
    return candidates[0]['path'], load_manifest(candidates[0]['path'])


def groups_of(sets):
    """All-databases groups over catalog() sets (newest first), newest first: {id, started_at (its first set's start),
    sets (id, database, verified, has_globals, size_bytes; in database order), databases, complete (a set for every
    database the run meant to back up), missing, verified (every set), globals_backup_id}. The newest set of a
    database within a group counts."""
    groups = {}
    for entry in sets:  # newest first
        if not entry.get('group'):
            continue
        group = groups.setdefault(entry['group'], dict(id=entry['group'], sets={}, started_at=entry['started_at'],
                                                       planned=set()))
        group['started_at'] = min(group['started_at'], entry['started_at'])
        group['planned'].update(entry.get('group_databases') or [])
        group['sets'].setdefault(entry['database'], dict(
            id=entry['id'], database=entry['database'], verified=bool(entry['verified']),
            has_globals=bool(entry.get('has_globals')), size_bytes=entry['size_bytes']))
    out = []
    for group in groups.values():
        members = [group['sets'][name] for name in sorted(group['sets'])]
        with_globals = [member['id'] for member in members if member['has_globals']]
        missing = sorted(group['planned'] - set(group['sets']))
        out.append(dict(id=group['id'], started_at=group['started_at'], sets=members,
                        databases=[member['database'] for member in members], complete=not missing, missing=missing,
                        verified=all(member['verified'] for member in members),
                        globals_backup_id=with_globals[0] if with_globals else None))
    out.sort(key=lambda group: group['started_at'], reverse=True)
    return out


def common_module_spec():
    """Options of the backup modules that connect and run the client tools: pg_backup, pg_backup_verify,
    pg_backup_restore and pg_globals_restore."""
    # Imported here: the modules that only read the catalog (pg_backup_info, `stackops backups`) never load psycopg.
    from ansible_collections.stackops.runbooks.plugins.module_utils.pg import pg_connection_spec, pg_tools_spec
    spec = pg_connection_spec()
    spec.update(pg_tools_spec())
    spec.update(backup_dir_spec())
    return spec


def backups_listing(catalog, pitr_catalog, offsite=None, rpo_offsite=False):
    """`stackops backups`: the logical sets (pg_backup_info's ``catalog``) and the physical base backups (the pitr
    role's catalog) newest first, the RPO over both kinds (or over the off-site copies), and where each logical set
    lives. The keys in the order of the report."""
    offsite = offsite or {}
    pitr_enabled = bool(pitr_catalog.get('enabled'))
    physical = [dict(item, database='(cluster)', started_at=item.get('begin_time'), finished_at=item.get('end_time'))
                for item in (pitr_catalog.get('backups') or [] if pitr_enabled else [])]
    every = sorted([dict(entry, kind='logical') for entry in catalog['backups']] + physical,
                   key=lambda entry: entry['age_seconds'])
    physical_ages = [item['age_seconds'] for item in physical if item.get('verified')]
    ages = ([catalog['rpo_seconds']] if catalog.get('rpo_seconds') is not None else []) + physical_ages
    local = unique(entry['id'] for entry in catalog['backups'])
    remote = unique(offsite.get('remote_ids') or [])
    locations = dict((backup_id, 'local') for backup_id in local if backup_id not in remote)
    locations.update((backup_id, 'remote') for backup_id in remote if backup_id not in local)
    locations.update((backup_id, 'both') for backup_id in local if backup_id in remote)
    if rpo_offsite or not ages:
        rpo_kind = None
    else:
        rpo_kind = 'physical' if physical_ages and min(physical_ages) == min(ages) else 'logical'
    return dict(
        count=len(every),
        total_size_bytes=catalog['total_size_bytes'] + sum(item['size_bytes'] for item in physical),
        backups=every,
        physical=dict((key, pitr_catalog.get(key)) for key in (
            'server', 'pitr_dir', 'receiver_alive', 'earliest_recoverable', 'latest_recoverable')) if pitr_enabled else None,
        in_progress=[entry['id'] for entry in catalog['in_progress']],
        latest=catalog['latest'],
        latest_verified=catalog['latest_verified'],
        latest_verified_age_seconds=min(ages) if ages else None,
        rpo_seconds=offsite.get('rpo_seconds') if rpo_offsite else (min(ages) if ages else None),
        rpo_kind=rpo_kind,
        rpo_source='offsite' if rpo_offsite else 'local',
        offsite=offsite.get('targets'),
        locations=locations)


def unique(values):
    seen = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen
