#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: ssh_backup_fetch
short_description: Download an off-site copy from an SSH host into a local directory as a checked backup set
version_added: 0.1.0
description:
  - Downloads one complete copy (O(backup_id), or the newest verified copy of O(database)) from below O(path) on the
    SSH host into C(<dest>/<id>.partial/) with C(rsync --partial) (an interrupted download resumes), checks every
    file's size and sha256 against the completion marker and the set against its manifest, and only then makes it
    C(<dest>/<id>) with one rename. The result is an ordinary backup set that M(stackops.runbooks.pg_backup_restore)
    restores from O(dest) the usual safe way (a set encrypted at rest is decrypted there, with its identity file).
  - A damaged file (one changed byte) is refused; nothing is published then.
  - A set already in O(dest) that matches its manifest is reused (no download).
  - With O(group_id), every set of a C(--all-databases) group, each checked and published as above, for
    C(stackops restore --all-databases --from-remote).
author:
  - stackops maintainers (@stackops)
options:
  group_id:
    description:
      - Fetch every set of this C(--all-databases) group (V(latest) - the newest complete verified group on the
        target). The group must be complete there; the names of every set are checked before the first download.
    type: str
extends_documentation_fragment:
  - stackops.runbooks.ssh
  - stackops.runbooks.offsite.fetch
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
notes:
  - Check mode reads the marker and reports what would be downloaded; it downloads nothing.
seealso:
  - module: stackops.runbooks.ssh_backup_copy
  - module: stackops.runbooks.pg_backup_restore
'''

EXAMPLES = r'''
- name: Bring the newest verified copy of appdb back from the backup host
  stackops.runbooks.ssh_backup_fetch:
    database: appdb
    dest: /var/backups/stackops/.from-remote
    host: backup1.example.com
    user: stackops
    path: /srv/backups/web1
    identity_file: /etc/stackops/offsite_ed25519
'''

RETURN = r'''
target_name:
  description: O(target_name), or C(ssh://user@host:port/path) when none was given.
  returned: always
  type: str
target:
  description: The target, as C(ssh://user@host:port/path).
  returned: always
  type: str
backup_id:
  description: The copy fetched.
  returned: success, when O(group_id) is not given
  type: str
group_id:
  description: The group fetched.
  returned: success, when O(group_id) is given
  type: str
backup_ids:
  description: The copies fetched (one, or every set of the group; the shape of M(stackops.runbooks.s3_backup_fetch)).
  returned: success
  type: list
  elements: str
path:
  description: The local set, C(<dest>/<backup id>) (with O(group_id), O(dest)).
  returned: success
  type: str
encrypted:
  description: The copy is encrypted at rest (pg_backup_restore decrypts it).
  returned: success
  type: bool
downloaded_bytes:
  description: Bytes of the files downloaded by this run.
  returned: always
  type: int
throughput_mib_per_second:
  description: Download rate of this run (including the checks).
  returned: always
  type: float
duration_seconds:
  description: Time the module took.
  returned: always
  type: float
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    BackupError, remove_tree, sha256_file, valid_backup_id)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import OffsiteError, copy_groups
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_names import checked_set
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import (
    fetch_spec, pick_copy_group, publish_fetched, require_verified_copy, reusable_set, timed)
from ansible_collections.stackops.runbooks.plugins.module_utils.ssh_offsite import SshTarget, ssh_target_spec


def choose(params, target):
    sets, unfinished = target.catalog(params['database'] if not params['backup_id'] else None)
    if params['backup_id']:
        if not valid_backup_id(params['backup_id']):
            raise BackupError('backup_id %r is not a backup id' % params['backup_id'])
        picked = [entry for entry in sets if entry['id'] == params['backup_id']]
        if not picked:
            raise OffsiteError('%s holds no complete copy of %s (unfinished copies never restore); list the copies with '
                               'stackops.runbooks.ssh_backup_info' % (target.label, params['backup_id']))
    else:
        if not params['database']:
            raise BackupError('give backup_id or database so the copy to fetch can be chosen')
        picked = [entry for entry in sets if entry['verified'] or not params['require_verified']]
        if not picked:
            raise OffsiteError('%s holds no %scomplete copy of database %r; copy one with stackops.runbooks.ssh_backup_copy'
                               ' or give backup_id' % (target.label, 'verified ' if params['require_verified'] else '',
                                                       params['database']))
    marker = picked[0]['marker']
    require_verified_copy(params, marker)
    return marker


def choose_group(params, target):
    sets, dummy = target.catalog()
    group = pick_copy_group(params, copy_groups(sets), target.label)
    markers = dict((entry['id'], entry['marker']) for entry in sets)
    chosen = [markers[backup_id] for backup_id in group['sets']]
    for marker in chosen:
        require_verified_copy(params, marker)
    return group, chosen


def check_names(params, target, marker):
    # Before anything is written: rsync would put a name with '..' wherever it points.
    return checked_set(params['dest'], marker, target.label, lambda name: '%s/%s' % (target.set_dir(marker['id']), name))


def fetch(params, target, marker, state):
    partial = check_names(params, target, marker)
    final = os.path.join(params['dest'], marker['id'])
    if reusable_set(final):
        return False
    state['partial'] = partial
    if not os.path.isdir(partial):
        os.makedirs(partial, mode=0o700)
    objects = marker.get('objects') or {}
    names = sorted(objects)
    state['stage'] = 'downloading'
    target.download(marker['id'], names, partial)
    state['stage'] = 'checking the files against the copy'
    problems = []
    for name in names:
        local = os.path.join(partial, name)
        size = os.path.getsize(local) if os.path.isfile(local) else None
        digest = sha256_file(local) if size is not None else None
        if (size, digest) != (objects[name]['size'], objects[name]['sha256']):
            problems.append('%s: %s bytes with sha256 %s, the copy says %d bytes with sha256 %s' % (
                name, size, digest, objects[name]['size'], objects[name]['sha256']))
        else:
            state['downloaded'] += size
    if problems:
        raise OffsiteError('the copy of %s on %s is damaged (%s); refusing it, nothing was published. Use another copy'
                           % (marker['id'], target.label, '; '.join(problems[:5])))
    state['stage'] = 'checking the set against its manifest'
    publish_fetched(partial, final, marker)
    state['partial'] = None
    return True


def main():
    spec = ssh_target_spec()
    spec.update(fetch_spec())
    spec.update(group_id=dict(type='str'))
    module = AnsibleModule(argument_spec=spec, required_one_of=[('backup_id', 'database', 'group_id')],
                           mutually_exclusive=[('backup_id', 'group_id')], supports_check_mode=True)
    params = module.params
    clock = time.monotonic()
    result = dict(changed=False, downloaded_bytes=0, throughput_mib_per_second=0.0)
    state = dict(stage='choosing the copy', partial=None, downloaded=0)
    try:
        target = SshTarget(module, params)
        result.update(target=target.label, target_name=target.name)
        if params['group_id']:
            group, markers = choose_group(params, target)
            result.update(group_id=group['id'], path=params['dest'])
        else:
            markers = [choose(params, target)]
            result.update(backup_id=markers[0]['id'], path=os.path.join(params['dest'], markers[0]['id']))
        result.update(backup_ids=[marker['id'] for marker in markers],
                      encrypted=any(bool(marker.get('encryption')) for marker in markers))
        state['stage'] = 'checking the names of the copy'
        for marker in markers:
            check_names(params, target, marker)
        messages = []
        for marker in markers:
            state['stage'] = 'fetching %s' % marker['id']
            if module.check_mode:
                done = os.path.isdir(os.path.join(params['dest'], marker['id']))
                changed = not done
                messages.append('%s %s from %s into %s' % (
                    'would reuse' if done else 'would download', marker['id'], target.label, params['dest']))
            else:
                changed = fetch(params, target, marker, state)
                messages.append('%s %s from %s into %s and checked it against its manifest' % (
                    'downloaded' if changed else 'reused', marker['id'], target.label, params['dest']))
            result['changed'] = result['changed'] or changed
        result['msg'] = '; '.join(messages)
        result['downloaded_bytes'] = state['downloaded']
    except BackupError as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        if state['partial'] and state['stage'] != 'downloading':
            # A damaged download is removed; an interrupted one stays for rsync to resume.
            remove_tree(state['partial'])
        module.fail_json(msg='fetching the off-site copy over ssh failed while %s: %s' % (state['stage'], exc), **result)
    except (IOError, OSError) as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        module.fail_json(msg='fetching the off-site copy over ssh failed while %s: %s; check free space and permissions '
                         'of %s' % (state['stage'], exc, params['dest']), **result)
    module.exit_json(**timed(result, time.monotonic() - clock, 'downloaded_bytes'))


if __name__ == '__main__':
    main()
