# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which backup sets a keep_last/keep_daily/keep_weekly/keep_monthly policy keeps, and deleting the others.

Sets of an all-databases group (``stackops backup --all-databases``) are kept or deleted as a whole group, never one
database at a time: a disaster recovery needs every set of one verified group. Per database, the policy counts only
sets outside groups; over groups, it counts groups, a group being verified when it is complete and every set is."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import catalog, groups_of
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_lock import LockSet, LockTimeout
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import parse_time, remove_tree


def retention_plan(sets, keep_last, keep_daily, keep_weekly, keep_monthly):
    """Grandfather-father-son selection over complete sets of one database.

    ``sets`` is newest first. Returns ({id: [reasons]}, [ids to delete]). Once any set is verified, the policy counts
    verified sets only: keep_last keeps the newest verified sets and each day/week/month bucket its newest verified
    set, so unverified sets can never push verified ones out. Unverified sets older than the newest verified one are
    deleted first; the newest ``keep_last`` (at least one with a day/week/month policy) of those newer than it are
    kept as awaiting verification. Without any
    verified set the policy counts every set, as nothing is proven either way. The newest verified set is always
    kept: deleting it would leave nothing proven restorable.
    """
    keep = {}

    def mark(entry, reason):
        keep.setdefault(entry['id'], []).append(reason)

    verified = [entry for entry in sets if entry.get('verified')]
    counted = verified or sets
    for entry in counted[:max(keep_last, 0)]:
        mark(entry, 'last')
    for label, count, bucket in (
            ('daily', keep_daily, lambda m: m.strftime('%Y-%m-%d')),
            ('weekly', keep_weekly, lambda m: '%04d-W%02d' % m.isocalendar()[:2]),
            ('monthly', keep_monthly, lambda m: m.strftime('%Y-%m'))):
        seen = []
        for entry in counted:
            key = bucket(parse_time(entry['started_at']))
            if key in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(key)
            mark(entry, label)
    if verified:
        newest = verified[0]
        awaiting = [entry for entry in sets if not entry.get('verified') and entry['started_at'] > newest['started_at']]
        # A bucket-only policy still keeps the newest set while it waits for its verify.
        waiting_room = keep_last if keep_last > 0 else int(max(keep_daily, keep_weekly, keep_monthly) > 0)
        for entry in awaiting[:waiting_room]:
            mark(entry, 'awaiting verification')
        mark(newest, 'newest verified')
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


def policy_plan(entries, policy):
    return retention_plan(entries, policy['keep_last'], policy['keep_daily'], policy['keep_weekly'],
                          policy['keep_monthly'])


def delete_set(backup_dir, entry):
    # By directory name, never by what a manifest says (catalog only lists sets whose id is their name).
    name = os.path.basename(entry['path'])
    # Renamed out of the catalog first, so a crash mid-delete never leaves a half set that looks complete.
    doomed_path = os.path.join(backup_dir, '.deleting-' + name)
    os.rename(os.path.join(backup_dir, name), doomed_path)
    remove_tree(doomed_path)


def apply_retention(backup_dir, database, policy, result, delete):
    """Apply ``policy`` (keep_last/keep_daily/keep_weekly/keep_monthly) to the sets of ``database`` outside
    all-databases groups (apply_group_retention keeps or deletes those); the caller holds its lock. Adds to
    ``result`` (``kept``, ``deleted``, ``freed_bytes``); ``delete=False`` only plans."""
    # The catalog is re-read under the lock: a backup may have been published since the first look.
    sets = [entry for entry in catalog(backup_dir, database)[0] if not entry.get('group')]
    keep, doomed = policy_plan(sets, policy)
    result['kept'].update(keep)
    by_id = dict((entry['id'], entry) for entry in sets)
    for backup_id in doomed:
        if delete:
            delete_set(backup_dir, by_id[backup_id])
        result['deleted'].append(backup_id)
        result['freed_bytes'] += by_id[backup_id]['size_bytes']


def group_retention_plan(sets, policy, database=None):
    """({group id: [reasons]}, [group ids to delete]) over the all-databases groups of ``sets`` (catalog() order;
    with ``database``, the groups holding one of its sets). A group counts as verified only when it is complete and
    every one of its sets is, so a group that is missing a database or still being verified never pushes a proven
    one out."""
    groups = [group for group in groups_of(sets) if database is None or database in group['databases']]
    return policy_plan([dict(id=group['id'], started_at=group['started_at'],
                             verified=group['complete'] and group['verified']) for group in groups], policy)


def apply_group_retention(backup_dir, policy, result, delete, lock_timeout=0, database=None):
    """Keep or delete whole all-databases groups by ``policy``. A doomed group is deleted under the locks of all its
    databases, every one of its sets (older duplicates too); a group one of whose databases is busy is left for the
    next run (``result['busy']``). Adds the group ids to ``result['kept_groups']``/``result['deleted_groups']`` and
    their sets to ``deleted``/``freed_bytes``."""
    sets = catalog(backup_dir)[0]
    keep, doomed = group_retention_plan(sets, policy, database)
    result.setdefault('kept_groups', {}).update(keep)
    result.setdefault('deleted_groups', [])
    for group_id in doomed:
        members = [entry for entry in sets if entry.get('group') == group_id]
        if delete:
            try:
                with LockSet(backup_dir, [entry['database'] for entry in members], 'retention', lock_timeout):
                    # Re-read under the locks: only what is still there is deleted.
                    members = [entry for entry in catalog(backup_dir)[0] if entry.get('group') == group_id]
                    for entry in members:
                        delete_set(backup_dir, entry)
            except LockTimeout as exc:
                result['busy'][group_id] = str(exc)
                continue
        result['deleted_groups'].append(group_id)
        for entry in members:
            result['deleted'].append(entry['id'])
            result['freed_bytes'] += entry['size_bytes']
