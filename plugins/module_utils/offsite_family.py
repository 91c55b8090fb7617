# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The three off-site modules, offsite_copy, offsite_info and offsite_fetch: their argument specs, which kind of
copy (``set``, ``group``, ``pitr``) and which transport (``type``) a call means, and the run of each. The old
module names (s3_backup_*, ssh_backup_*, s3_pitr_*) redirect to these (meta/runtime.yml) with their own options,
so the kind and the type are inferred from the options when they are not given."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import backup_dir_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_retention import retention_policy_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError, remove_tree
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import EncryptionError
from ansible_collections.stackops.runbooks.plugins.module_utils import offsite_pitr, offsite_sets
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import lock_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import finish_copy_result, timed
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import PitrError
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import OffsiteError
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_s3 import S3Target
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_ssh import SshTarget
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_target import (
    REQUIRED, Throttle, target_spec, target_type)

KINDS = ('set', 'group', 'pitr')
# The default retention of each kind: the grandfather-father-son policy of sets and groups, keep_last of PITR.
PITR_KEEP_LAST = 2


def pitr_spec():
    """pitr_dir, server_name, pg_bindir, barman_bin (doc fragment stackops.runbooks.pitr), optional here: only
    kind=pitr needs them."""
    return dict(
        pitr_dir=dict(type='path'),
        server_name=dict(type='str'),
        barman_bin=dict(type='path'),
        pg_bindir=dict(type='path', default='/usr/lib/postgresql/15/bin'),
    )


def retention_spec():
    spec = retention_policy_spec()
    for option in spec.values():
        option.pop('default', None)  # filled per kind (retention_for)
    return spec


def selection_spec(**options):
    """The target (every transport's options), what is selected on it (kind, database, group, backup id), and the
    module's own ``options``: the spec of each of the three modules."""
    spec = target_spec()
    spec.update(kind=dict(type='str', choices=list(KINDS)), database=dict(type='str'), group_id=dict(type='str'),
                backup_id=dict(type='str'))
    spec.update(options)
    return spec


def copy_spec():
    spec = selection_spec()
    spec.update(backup_dir_spec())
    spec['backup_dir']['required'] = False
    spec.update(lock_spec())
    spec.update(pitr_spec())
    spec.update(
        sets=dict(type='str', choices=['latest', 'all'], default='latest'),
        base_backups=dict(type='str', choices=['latest', 'all', 'none'], default='latest'),
        retention=dict(type='dict', options=retention_spec()),
        remote_check=dict(type='str', choices=['etag', 'download', 'sha256'], default='etag'),
        age_recipients=dict(type='list', elements='str', default=[]),
        staging_dir=dict(type='path'),
        max_bandwidth_mib=dict(type='int', default=0),
    )
    return spec


def info_spec():
    return selection_spec(server_name=dict(type='str'), remote_check=dict(
        type='str', choices=['none', 'etag', 'download', 'sha256'], default='none'))


def fetch_spec():
    spec = selection_spec()
    spec.update(pitr_spec())
    spec.update(
        dest=dict(type='path'),
        require_verified=dict(type='bool', default=True),
        age_identity_file=dict(type='path'),
        target=dict(type='str', choices=['time', 'lsn', 'name', 'latest']),
        target_value=dict(type='str'),
    )
    return spec


def open_target(module, params):
    """The factory: the target ``params`` describe, an S3Target or an SshTarget by ``type`` (or by the options a
    transport takes when ``type`` is not given)."""
    kind = target_type(params)
    missing = [name for name in REQUIRED[kind] if not params.get(name)]
    if missing:
        raise OffsiteError('a %s target needs %s; set it in stackops_offsite_targets (docs/offsite.md)' % (
            kind, ' and '.join(missing)))
    return (S3Target if kind == 's3' else SshTarget)(module, params)


def copy_kind(params):
    """kind, else: group_id means a group, database a set, server_name alone PITR."""
    if params['kind']:
        return params['kind']
    if params['group_id']:
        return 'group'
    if params['database']:
        return 'set'
    if params['server_name']:
        return 'pitr'
    raise BackupError('give kind (set, group or pitr), or database, group_id or server_name, so the copy knows what '
                      'to send')


def fetch_kind(params):
    """kind, else: a recovery target means PITR, group_id a group, anything else a set."""
    if params['kind']:
        return params['kind']
    if params['target']:
        return 'pitr'
    return 'group' if params['group_id'] else 'set'


def check_kind(params, kind):
    """What each kind needs besides the target, said before anything is read."""
    if kind == 'pitr':
        missing = [name for name in ('pitr_dir', 'server_name') if not params.get(name)]
        if 'target' in params and not params.get('target'):
            missing.append('target (time, lsn, name or latest)')
        if missing:
            raise BackupError('kind=pitr needs %s (stackops_pitr_dir, stackops_pitr_server)' % ', '.join(missing))
    elif kind == 'group' and not params.get('group_id'):
        raise BackupError('kind=group needs group_id')


def retention_for(kind, policy):
    if policy is None:
        return None
    defaults = dict(keep_last=PITR_KEEP_LAST) if kind == 'pitr' else dict(
        (name, option['default']) for name, option in retention_policy_spec().items())
    return dict((name, defaults.get(name) if value is None else value) for name, value in policy.items())


def run_copy(module):
    params = module.params
    clock = time.monotonic()
    result = dict(changed=False, throughput_mib_per_second=0.0)
    what = params['group_id'] or params['database'] or params['server_name']
    try:
        kind = copy_kind(params)
        check_kind(params, kind)
        if kind == 'set' and params['group_id']:
            raise BackupError('kind=set copies one database: give database, not group_id')
        params['retention'] = retention_for(kind, params['retention'])
        target = open_target(module, params)
        result.update(target=target.label, target_name=target.name, kind=kind, type=target.type)
        throttle = Throttle(params['max_bandwidth_mib'])
        if kind == 'pitr':
            offsite_pitr.copy(module, params, target, result, throttle)
        else:
            offsite_sets.copy(module, params, target, result, throttle)
    except (BackupError, EncryptionError, PitrError) as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        label = ('backup group %s' % params['group_id']) if params['group_id'] else what
        module.fail_json(msg='off-site copy of %s failed: %s' % (label, exc), **result)
    if kind == 'pitr':
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        module.exit_json(**result)
    module.exit_json(**finish_copy_result(result, time.monotonic() - clock, backup_dir=params['backup_dir'],
                                          database=params['database'], check=module.check_mode))


def run_info(module):
    params = module.params
    result = dict(changed=False)
    try:
        kind = params['kind'] or ('pitr' if params['server_name'] and not params['database'] else 'set')
        target = open_target(module, params)
        result.update(target=target.label, target_name=target.name, kind=kind, type=target.type)
        if kind == 'pitr':
            if not params['server_name']:
                raise BackupError('kind=pitr needs server_name (stackops_pitr_server)')
            remote = offsite_pitr.PitrRemote(target, params['server_name'])
            bases, unfinished = remote.bases()
            catalog = remote.wal_catalog()
            result.update(target=remote.label, base_backups=[dict(
                (key, marker.get(key)) for key in ('id', 'begin_time', 'end_time', 'begin_wal', 'end_wal', 'verified',
                                                   'remote_size_bytes')) for marker in bases],
                unfinished=[dict(id=backup_id) for backup_id in unfinished],
                wal_files=len(catalog['files']), wal_last=offsite_pitr.newest_segment(catalog['files']),
                wal_floor=catalog.get('floor'))
        else:
            offsite_sets.info(module, params, target, result)
    except BackupError as exc:
        module.fail_json(msg='listing the off-site copies failed: %s' % exc, **result)
    module.exit_json(**result)


def run_fetch(module):
    params = module.params
    clock = time.monotonic()
    result = dict(changed=False, downloaded_bytes=0, throughput_mib_per_second=0.0)
    state = dict(stage='choosing the copy', partial=None, downloaded=0)
    kind = None
    try:
        kind = fetch_kind(params)
        check_kind(params, kind)
        target = open_target(module, params)
        result.update(target=target.label, target_name=target.name, kind=kind, type=target.type)
        if kind == 'pitr':
            offsite_pitr.fetch(module, params, target, result)
        else:
            offsite_sets.fetch(module, params, target, result, state)
    except (BackupError, EncryptionError, PitrError) as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        if state['partial'] and not (state['stage'] == 'downloading' and target.batches):
            # A damaged download is removed; an interrupted rsync download stays for the next run to resume.
            remove_tree(state['partial'])
        if kind == 'pitr':
            module.fail_json(msg='fetching the PITR copy of %s failed: %s' % (params['server_name'], exc), **result)
        module.fail_json(msg='fetching the off-site copy failed while %s: %s' % (state['stage'], exc), **result)
    except (IOError, OSError) as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        module.fail_json(msg='fetching the off-site copy failed while %s: %s; check free space and permissions of %s'
                         % (state['stage'], exc, params['pitr_dir'] if kind == 'pitr' else params['dest']), **result)
    if module.check_mode:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        module.exit_json(**result)
    module.exit_json(**timed(result, time.monotonic() - clock, 'downloaded_bytes'))
