# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Target-independent decisions of the off-site modules (S3 and SSH alike): which local sets to copy, which
remote copies retention deletes, and the shape of the results. The targets only move bytes."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import check_files, load_manifest
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_lock import DatabaseLock
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_retention import (
    retention_plan, retention_policy_problem)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    MANIFEST, BackupError, ensure_backup_dir, parse_time, publish, slug, utcnow, valid_backup_id, write_json)

MIB = 1024 * 1024


def age_of(started_at, now=None):
    return int(((now or utcnow()) - parse_time(started_at)).total_seconds())


def copy_entry(backup_id, marker, location, now):
    """A complete copy as listed by every target's catalog, from its completion marker."""
    return dict(
        id=backup_id, database=marker['database'], started_at=marker['started_at'],
        finished_at=marker.get('finished_at'), age_seconds=age_of(marker['started_at'], now),
        size_bytes=marker.get('size_bytes'), remote_size_bytes=marker.get('remote_size_bytes'),
        verified=bool(marker.get('verified')), copied_at=marker.get('copied_at'),
        checksum=marker.get('checksum'), encrypted=bool(marker.get('encryption')),
        group=marker.get('group'), group_databases=marker.get('group_databases') or [],
        location=location)


def choose_group(params, local_sets):
    members = [entry for entry in local_sets if entry.get('group') == params['group_id']]
    if not members:
        raise BackupError('no set of backup group %s in %s; list the groups with stackops.runbooks.pg_backup_group_info'
                          % (params['group_id'], params['backup_dir']))
    newest = {}
    for entry in members:  # newest first: the newest set of a database counts, as in pg_backup_group_info
        newest.setdefault(entry['database'], entry)
    planned = set()
    for entry in members:
        planned.update(entry.get('group_databases') or [])
    missing = sorted(planned - set(newest))
    if missing:
        raise BackupError('backup group %s is incomplete (no set of %s); an incomplete group is not copied off-site, '
                          'take a new one with stackops backup --all-databases' % (params['group_id'], ', '.join(missing)))
    unverified = sorted(entry['id'] for entry in newest.values() if not entry['verified'])
    if unverified:
        raise BackupError('backup group %s has unverified sets (%s); only verified groups are copied off-site. Verify '
                          'them with stackops.runbooks.pg_backup_verify' % (params['group_id'], ', '.join(unverified)))
    return [newest[name] for name in sorted(newest)]


def choose_sets(params, local_sets, remote_ids):
    """The local sets a copy run sends: a whole verified group, one verified set, the newest or all missing ones."""
    if params.get('group_id'):
        return choose_group(params, local_sets)
    if params['backup_id']:
        if not valid_backup_id(params['backup_id']):
            raise BackupError('backup_id %r is not a backup id' % params['backup_id'])
        chosen = [entry for entry in local_sets if entry['id'] == params['backup_id']]
        if not chosen:
            raise BackupError('backup %s of %s not found in %s; list the catalog with stackops.runbooks.pg_backup_info'
                              % (params['backup_id'], params['database'], params['backup_dir']))
        if not chosen[0]['verified']:
            raise BackupError('backup %s is not verified; only verified sets are copied off-site. Verify it with '
                              'stackops.runbooks.pg_backup_verify' % params['backup_id'])
        return chosen
    verified = [entry for entry in local_sets if entry['verified']]
    if params['sets'] == 'latest':
        return verified[:1]
    return [entry for entry in verified if entry['id'] not in remote_ids]


def copy_chosen(module, params, chosen, remote_ids, result, copy):
    """Send each chosen set not yet on the target with copy(entry), under the set's database lock."""
    for entry in chosen:
        if entry['id'] in remote_ids:
            result['present'].append(entry['id'])
            continue
        result['copied'].append(entry['id'])
        if module.check_mode:
            continue
        ensure_backup_dir(params['backup_dir'])
        with DatabaseLock(params['backup_dir'], entry['database'], 'offsite copy', params['lock_timeout']):
            if not os.path.isdir(entry['path']):
                raise BackupError('backup %s was deleted before it could be copied' % entry['id'])
            copy(entry)


def checked_policy(policy):
    problem = retention_policy_problem(policy)
    if problem:
        raise BackupError(problem)
    return policy


def retention_decision(entries, policy):
    """(kept id -> reasons, ids to delete) by the grandfather-father-son policy; the newest verified entry stays."""
    return retention_plan(entries, policy['keep_last'], policy['keep_daily'], policy['keep_weekly'],
                          policy['keep_monthly'])


def single_sets(sets):
    # A group's copies are pruned as a group (group_id runs), never one by one.
    return [entry for entry in sets if not entry.get('group')]


def unfinished_leftovers(unfinished, databases, local_ids):
    """Unfinished copies of these databases that nothing can resume: their local set is gone."""
    # An unfinished copy is resumed by the next run while its local set exists; without it, it is garbage.
    owners = tuple(slug(name) + '-' for name in databases)
    return [entry['id'] for entry in unfinished
            if entry['id'].startswith(owners) and entry['id'] not in local_ids and 'problem' not in entry]


def local_ids(local_sets, partials):
    return set(entry['id'] for entry in local_sets) | set(entry['id'] for entry in partials)


def summary(entry):
    return dict(id=entry['id'], age_seconds=entry['age_seconds']) if entry else None


def newest_verified(entries):
    """latest_verified and rpo_seconds of a result, from copies (or groups) newest first."""
    newest = ([entry for entry in entries if entry['verified']] or [None])[0]
    return dict(latest_verified=summary(newest), rpo_seconds=newest['age_seconds'] if newest else None)


def timed(result, elapsed, moved_key):
    """duration_seconds and, when bytes moved, throughput_mib_per_second of a copy or fetch result."""
    result['duration_seconds'] = round(elapsed, 3)
    if result[moved_key]:
        result['throughput_mib_per_second'] = round(result[moved_key] / MIB / max(elapsed, 0.001), 1)
    return result


def finish_copy_result(result, elapsed, backup_dir=None, database=None, check=False):
    retention = result.get('retention') or {}
    result['changed'] = bool(result['copied'] or retention.get('deleted') or retention.get('unfinished_removed'))
    if backup_dir and not check:
        record_copy_state(backup_dir, result, database)
    return timed(result, elapsed, 'uploaded_bytes')


COPY_STATE_DIR = '.offsite'


def record_copy_state(backup_dir, result, database=None):
    """``<backup_dir>/.offsite/<target>.json``: the target's newest verified copy as this copy run saw it, so
    `stackops status` can judge every target's age from a local file, without asking the target."""
    what = result.get('group_id') or database
    name = '%s-%s' % (slug(result.get('target_name') or result.get('target') or 'target'), slug(what or 'all'))
    directory = os.path.join(backup_dir, COPY_STATE_DIR)
    ensure_backup_dir(backup_dir)
    if not os.path.isdir(directory):
        os.mkdir(directory, 0o700)
    write_json(os.path.join(directory, name + '.json'), dict(
        target=result.get('target'), target_name=result.get('target_name'), database=database,
        group_id=result.get('group_id'), latest_verified=result.get('latest_verified'),
        recorded_at=utcnow().strftime('%Y-%m-%dT%H:%M:%SZ'), recorded_epoch=round(time.time(), 3)))


def pick_copy_group(params, groups, label):
    """The group a fetch with group_id takes from a target's groups (offsite.copy_groups): V(latest) is the newest
    complete verified one. A group that is not complete there is refused, whatever was asked."""
    if params['group_id'] == 'latest':
        picked = [group for group in groups if group['complete'] and (group['verified'] or not params['require_verified'])]
        if not picked:
            raise BackupError('%s holds no complete %sbackup group; copy one with stackops backup --all-databases or '
                              'give group_id' % (label, 'verified ' if params['require_verified'] else ''))
    else:
        picked = [group for group in groups if group['id'] == params['group_id']]
        if not picked:
            raise BackupError('%s holds no complete copy of backup group %s (groups there: %s)' % (
                label, params['group_id'], ', '.join(group['id'] for group in groups) or 'none'))
    group = picked[0]
    if not group['complete']:
        raise BackupError('the copy of backup group %s on %s is incomplete (no set of %s); pick another group' % (
            group['id'], label, ', '.join(group['missing'])))
    return group


def require_verified_copy(params, marker):
    if params['require_verified'] and not marker.get('verified'):
        raise BackupError('copy %s was not verified before it was copied; set require_verified=false to fetch it '
                          'anyway' % marker['id'])


def reusable_set(final):
    """True when a fetched set is already in place and matches its manifest; a damaged one is never reused."""
    if not os.path.isdir(final):
        return False
    problems = check_files(final, load_manifest(final))
    if problems:
        raise BackupError('%s already exists and does not match its manifest (%s); remove it and fetch again'
                          % (final, '; '.join(problems[:3])))
    return True


def publish_fetched(partial, final, marker):
    """Publish a downloaded set with one rename, only when it matches its manifest and the copy's marker."""
    manifest = load_manifest(partial)
    problems = check_files(partial, manifest)
    if manifest.get('id') != marker['id'] or manifest.get('checksum') != marker.get('checksum'):
        problems.append('%s describes %s (checksum %s), the copy is %s (checksum %s)' % (
            MANIFEST, manifest.get('id'), manifest.get('checksum'), marker['id'], marker.get('checksum')))
    if problems:
        raise BackupError('the downloaded set %s does not match its manifest (%s); refusing it, %s was not published'
                          % (marker['id'], '; '.join(problems[:5]), final))
    publish(partial, final)


def listing_result(sets, unfinished, problems, database):
    """The info modules' result: copies with a problem never count for latest, latest_verified or the RPO."""
    usable = [entry for entry in sets if entry['id'] not in problems]
    verified = ([entry for entry in usable if entry['verified']] or [None])[0]
    return dict(
        changed=False, backups=sets, unfinished=unfinished, problems=problems, ok=not problems,
        latest=summary((usable or [None])[0]), latest_verified=summary(verified),
        rpo_seconds=verified['age_seconds'] if verified and database is not None else None)


def check_listed(sets, check):
    """{id: problems} of the listed copies, check(entry) giving one copy's problems; marks each entry intact."""
    problems = {}
    for entry in sets:
        found = check(entry)
        if found:
            problems[entry['id']] = found
        entry['intact'] = not found
    return problems
