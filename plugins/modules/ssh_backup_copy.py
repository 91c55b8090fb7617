#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: ssh_backup_copy
short_description: Copy verified backup sets to a host over SSH (rsync), check the copy, and prune old copies
version_added: 0.1.0
description:
  - Copies verified backup sets of O(database) (the newest, all, or O(backup_id)), or every set of a
    C(--all-databases) group (O(group_id)), below O(path) on an SSH host with C(rsync --partial), so an interrupted
    copy resumes where it stopped. Unverified sets are never copied.
  - Every local file is hashed first and compared with the manifest. After the transfer the size and sha256 of
    every remote file, computed on the remote host, are compared with those values; a damaged file is sent once
    more, and only a copy that matches completely gets its completion marker C(stackops-copy.json), written last
    by a rename on the remote host. A directory without it never counts, in listings, RPO or restores.
  - With O(retention) the copies of O(database) on the target are pruned by the same grandfather-father-son rules
    as local sets; the newest verified copy is always kept, copies are identified by their directory name (the
    backup id). Unfinished copies whose local set is gone are removed too.
  - A set encrypted at rest (M(stackops.runbooks.pg_backup_encrypt)) is copied as it is, ciphertext only; the marker
    records C(encryption.at_rest). Nothing is encrypted in transit; encryption at copy time is an S3-target feature
    (M(stackops.runbooks.s3_backup_copy)). With O(age_recipients), a set that is not encrypted at rest to them is
    refused, never sent in plaintext.
  - Holds the per-database lock of O(database) while it reads a set, so local retention cannot delete it meanwhile.
author:
  - stackops maintainers (@stackops)
options:
  database:
    description:
      - Database whose sets are copied and whose copies retention prunes; copies that belong to an
        C(--all-databases) group are left to O(group_id) runs, so single-set retention never breaks a group.
      - One of O(database) and O(group_id) is required.
    type: str
  group_id:
    description:
      - Copy every set of this C(--all-databases) group (each holds the server's globals). The group must be
        complete (a set of every database the run meant to back up) and every set verified.
      - With O(retention), the policy counts whole groups on the target (a group is verified when complete and all
        its copies are verified); a group is kept or deleted as a whole and the newest verified group is always kept.
    type: str
  age_recipients:
    description:
      - age public keys (C(age1...)) every copy must be encrypted to (the role passes
        C(stackops_offsite_age_recipients)). Only sets encrypted at rest (M(stackops.runbooks.pg_backup_encrypt),
        C(stackops_backup_encrypt)) to each of them are sent, as they are (ciphertext only).
      - Any other set to send fails the module before anything is sent, naming C(stackops_offsite_age_recipients)
        and C(stackops_backup_encrypt); with O(group_id) the whole group is refused when one of its sets is.
      - Empty (the default) sends sets as they are on disk, encrypted at rest or not.
    type: list
    elements: str
    default: []
  max_bandwidth_mib:
    description: Upper limit of the transfer rate in MiB/s (rsync C(--bwlimit)); V(0) is unlimited.
    type: int
    default: 0
extends_documentation_fragment:
  - stackops.runbooks.ssh
  - stackops.runbooks.offsite
  - stackops.runbooks.postgres.backup_catalog
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_catalog
notes:
  - Check mode lists what would be copied and deleted, after reading the target; it sends and deletes nothing.
  - Copies of C(--all-databases) groups are pruned only by O(group_id) runs, as whole groups.
seealso:
  - module: stackops.runbooks.ssh_backup_info
  - module: stackops.runbooks.ssh_backup_fetch
  - module: stackops.runbooks.s3_backup_copy
'''

EXAMPLES = r'''
- name: Copy the newest verified backup of appdb to the backup host and keep 14 copies there
  stackops.runbooks.ssh_backup_copy:
    backup_dir: /var/backups/stackops
    database: appdb
    host: backup1.example.com
    user: stackops
    path: /srv/backups/web1
    identity_file: /etc/stackops/offsite_ed25519
    known_hosts_file: /etc/stackops/known_hosts
    retention: {keep_last: 14, keep_daily: 14, keep_weekly: 8, keep_monthly: 12}

- name: Copy only sets encrypted at rest to this key (a plaintext set fails the task, nothing is sent)
  stackops.runbooks.ssh_backup_copy:
    backup_dir: /var/backups/stackops
    database: appdb
    host: backup1.example.com
    path: /srv/backups/web1
    age_recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]
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
copied:
  description: Sets copied by this run (in check mode, that would be copied).
  returned: always
  type: list
  elements: str
present:
  description: Chosen sets that already had a complete copy on the target.
  returned: always
  type: list
  elements: str
uploaded_bytes:
  description: Bytes of the sets copied by this run (what rsync had to send may be less when it resumed).
  returned: always
  type: int
resent:
  description: Files that did not match after the first transfer and were sent again (C(<backup id>/<file>)).
  returned: always
  type: list
  elements: str
throughput_mib_per_second:
  description: Copy rate of this run (including the checks).
  returned: always
  type: float
retention:
  description:
    - Copies kept (C(kept), id to reasons; with O(group_id) group id to reasons), deleted (C(deleted), with
      O(group_id) the group ids, their set ids in C(deleted_sets)) and unfinished copies removed
      (C(unfinished_removed)).
  returned: when O(retention) is given
  type: dict
group_id:
  description: O(group_id).
  returned: when O(group_id) is given
  type: str
latest_verified:
  description:
    - Newest verified complete copy of O(database) on the target after this run (id, age_seconds), or V(null).
    - With O(group_id), the newest verified complete group (id, age_seconds).
  returned: always
  type: dict
rpo_seconds:
  description: Age of that copy in seconds, or V(null).
  returned: always
  type: int
duration_seconds:
  description: Time the module took.
  returned: always
  type: float
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import (
    backup_dir_spec, catalog, load_manifest, load_verification)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError, sha256_file
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import (
    OffsiteError, check_digest, copy_groups, manifest_files, marker_for)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import (
    age_of, checked_policy, choose_sets, copy_chosen, copy_spec, finish_copy_result, local_ids, newest_verified,
    retention_decision, single_sets, unfinished_leftovers)
from ansible_collections.stackops.runbooks.plugins.module_utils.ssh_offsite import (
    SshTarget, refuse_plaintext, ssh_target_spec)


def mismatches(found, local):
    return sorted(name for name, expected in local.items() if found.get(name) != expected)


def copy_set(params, target, entry, result):
    set_dir = entry['path']
    manifest = load_manifest(set_dir)
    # Read again under the lock: this manifest describes the files that are sent.
    refuse_plaintext([manifest], params['age_recipients'], target.label)
    verification = load_verification(set_dir)
    if not (verification or {}).get('verified'):
        raise BackupError('backup %s is no longer verified; it was not copied' % manifest['id'])
    local = {}
    for rel, path, expected in manifest_files(set_dir, manifest):
        digest = sha256_file(path)
        check_digest(path, digest, expected)
        local[rel] = (os.path.getsize(path), digest)
    names = sorted(local)
    target.upload(set_dir, manifest['id'], names, params['max_bandwidth_mib'])
    bad = mismatches(target.digests(manifest['id'], names), local)
    if bad:
        # rsync skips a file whose size and time match: a damaged remote file is removed, then sent again.
        result['resent'].extend('%s/%s' % (manifest['id'], name) for name in bad)
        target.remove_files(manifest['id'], bad)
        target.upload(set_dir, manifest['id'], bad, params['max_bandwidth_mib'])
        bad = mismatches(target.digests(manifest['id'], names), local)
    if bad:
        raise OffsiteError('the copy of %s on %s does not match what was sent (%s); it does not count as a copy. Check '
                           'the remote disk and run the copy again' % (manifest['id'], target.label, ', '.join(bad[:5])))
    objects = dict((name, dict(size=size, sha256=digest, plaintext_size=size, plaintext_sha256=digest))
                   for name, (size, digest) in local.items())
    at_rest = manifest.get('encryption')
    encryption = dict(method='age', recipients=at_rest['recipients'], at_rest=True) if at_rest else None
    marker = marker_for(manifest, verification, objects, encryption, sum(meta['size'] for meta in objects.values()))
    target.put_marker(manifest['id'], marker)
    result['uploaded_bytes'] += marker['remote_size_bytes']


def prune(module, params, target, local):
    policy = checked_policy(params['retention'])
    sets, unfinished = target.catalog(params['database'])
    keep, doomed = retention_decision(single_sets(sets), policy)
    leftovers = unfinished_leftovers(unfinished, [params['database']], local)
    if not module.check_mode:
        target.delete_sets(doomed + leftovers)
    return dict(kept=keep, deleted=doomed, unfinished_removed=leftovers)


def prune_groups(module, params, target, local):
    policy = checked_policy(params['retention'])
    sets, unfinished = target.catalog()
    groups = copy_groups(sets)
    keep, doomed = retention_decision(groups, policy)
    members = dict((group['id'], group['sets']) for group in groups)
    doomed_sets = [backup_id for group_id in doomed for backup_id in members[group_id]]
    databases = sorted(set(name for group in groups for name in group['databases']))
    leftovers = unfinished_leftovers(unfinished, databases, local)
    if not module.check_mode:
        target.delete_sets(doomed_sets + leftovers)
    return dict(kept=keep, deleted=doomed, deleted_sets=doomed_sets, unfinished_removed=leftovers)


def main():
    spec = ssh_target_spec()
    spec.update(backup_dir_spec())
    spec.update(copy_spec())
    spec.update(
        database=dict(type='str'),
        group_id=dict(type='str'),
        max_bandwidth_mib=dict(type='int', default=0),
        age_recipients=dict(type='list', elements='str', default=[]),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, required_one_of=[('database', 'group_id')],
                           mutually_exclusive=[('group_id', 'backup_id')])
    params = module.params
    clock = time.monotonic()
    result = dict(changed=False, copied=[], present=[], uploaded_bytes=0, resent=[], throughput_mib_per_second=0.0)
    try:
        target = SshTarget(module, params)
        result.update(target=target.label, target_name=target.name)
        database = None if params['group_id'] else params['database']
        local_sets, partials = catalog(params['backup_dir'], database)
        remote_sets, dummy = target.catalog(database)
        remote_ids = set(entry['id'] for entry in remote_sets)
        chosen = choose_sets(params, local_sets, remote_ids)
        refuse_plaintext([load_manifest(entry['path']) for entry in chosen if entry['id'] not in remote_ids],
                         params['age_recipients'], target.label, params['group_id'])
        copy_chosen(module, params, chosen, remote_ids, result,
                    lambda entry: copy_set(params, target, entry, result))
        if params['retention'] is not None:
            result['retention'] = (prune_groups if params['group_id'] else prune)(
                module, params, target, local_ids(local_sets, partials))
        if params['group_id']:
            result['group_id'] = params['group_id']
            result.update(newest_verified([dict(group, age_seconds=age_of(group['started_at']))
                                           for group in copy_groups(target.catalog()[0])]))
        else:
            result.update(newest_verified(target.catalog(params['database'])[0]))
    except BackupError as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        what = ('backup group %s' % params['group_id']) if params['group_id'] else params['database']
        module.fail_json(msg='off-site copy of %s over ssh failed: %s' % (what, exc), **result)
    module.exit_json(**finish_copy_result(result, time.monotonic() - clock, backup_dir=params['backup_dir'],
                                          database=params['database'], check=module.check_mode))


if __name__ == '__main__':
    main()
