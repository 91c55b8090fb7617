#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: s3_backup_copy
short_description: Copy verified backup sets to S3-compatible storage, check the copy, and prune old copies
version_added: 0.1.0
description:
  - Copies verified backup sets of O(database) (the newest, all, or O(backup_id)) to one S3 target. Unverified
    sets are never copied.
  - Every file is read once, its sha256 compared with the manifest in the same read, and sent with Content-MD5.
    Files larger than one part go up as multipart uploads; an unfinished upload of the same key (a killed run) is
    resumed, reusing the parts whose MD5 and size match.
  - With O(age_recipients) every file, the manifest included, is encrypted with C(age) on this host before it is
    sent; the marker records plaintext and ciphertext checksums.
  - After the upload every object's size and ETag (with O(remote_check=download) also its sha256, read back) are compared
    with the local values. Only then is the completion marker C(stackops-copy.json) written, last. A copy without
    it never counts, in listings, RPO or restores.
  - With O(retention) the copies of O(database) on the target are pruned by the same grandfather-father-son rules
    as local sets; the newest verified copy is always kept, copies are identified by their key. Unfinished copies
    that nothing can resume any more (their local set is gone) are removed too.
  - Holds the per-database lock of O(database) while it reads a set, so local retention cannot delete it meanwhile.
author:
  - stackops maintainers (@stackops)
options:
  database:
    description:
      - Database whose sets are copied and whose copies retention prunes. Copies that belong to an
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
  remote_check:
    description:
      - How the uploaded objects are checked before the copy counts. V(etag) compares sizes and the MD5 the server
        computed; V(download) also reads every object back and compares sha256 digests.
    type: str
    choices: [etag, download]
    default: etag
  age_recipients:
    description:
      - age public keys (C(age1...)) to encrypt to before upload; empty sends the plaintext (still over TLS).
      - A set already encrypted at rest (M(stackops.runbooks.pg_backup_encrypt)) is uploaded as it is, never
        encrypted twice; the marker records C(encryption.at_rest) and the recipients of the set.
    type: list
    elements: str
    default: []
  staging_dir:
    description: Where encrypted files are written before upload (as much free space as the largest set); default O(backup_dir).
    type: path
  max_bandwidth_mib:
    description: Upper limit of the upload rate in MiB/s; V(0) is unlimited.
    type: int
    default: 0
extends_documentation_fragment:
  - stackops.runbooks.s3
  - stackops.runbooks.s3.object_lock
  - stackops.runbooks.offsite
  - stackops.runbooks.postgres.backup_catalog
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_catalog
notes:
  - Check mode lists what would be copied and deleted, after reading the target; it uploads and deletes nothing.
  - A copy due for deletion whose objects are still under S3 Object Lock retention (or a legal hold) is kept whole
    and reported in RV(retention) (C(locked), with the date the lock ends), not as a failure; objects the target
    refuses to delete anyway are listed in C(refused). In a versioned bucket every version of a deleted copy is
    deleted, so nothing stays behind hidden.
seealso:
  - module: stackops.runbooks.s3_backup_info
  - module: stackops.runbooks.s3_backup_fetch
'''

EXAMPLES = r'''
- name: Copy the newest verified backup of appdb to S3, encrypted, and keep 14 copies
  stackops.runbooks.s3_backup_copy:
    backup_dir: /var/backups/stackops
    database: appdb
    bucket: acme-db-backups
    prefix: prod/db1
    region: eu-central-1
    age_recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]
    retention: {keep_last: 14, keep_daily: 14, keep_weekly: 8, keep_monthly: 12}

- name: Copy every verified set to a self-hosted S3 server
  stackops.runbooks.s3_backup_copy:
    backup_dir: /var/backups/stackops
    database: appdb
    sets: all
    bucket: backups
    endpoint_url: https://s3.backup.internal:9000
    path_style: true
    ca_bundle: /etc/ssl/private-ca.pem
    access_key: "{{ s3_access_key }}"
    secret_key: "{{ s3_secret_key }}"
'''

RETURN = r'''
target_name:
  description: O(target_name), or the bucket when none was given.
  returned: always
  type: str
target:
  description: The target, as C(s3://bucket/prefix/ at endpoint).
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
  description: Bytes sent (ciphertext when encrypted), resumed parts not included.
  returned: always
  type: int
resumed_bytes:
  description: Bytes of parts reused from an unfinished upload.
  returned: always
  type: int
throughput_mib_per_second:
  description: Upload rate of this run (including encryption and checks).
  returned: always
  type: float
retention:
  description:
    - Copies kept (C(kept), id to reasons; with O(group_id) group id to reasons), deleted (C(deleted), with
      O(group_id) the group ids, their set ids in C(deleted_sets)), unfinished copies removed
      (C(unfinished_removed)), copies kept because of S3 Object Lock (C(locked), id with C(until), C(mode),
      C(objects)) and objects the target refused to delete (C(refused)).
  returned: when O(retention) is given
  type: dict
group_id:
  description: The group copied, with O(group_id).
  returned: when O(group_id) is given
  type: str
latest_verified:
  description:
    - Newest verified complete copy of O(database) on the target after this run (id, age_seconds), or V(null).
      With O(group_id), the newest verified complete group (id, age_seconds).
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
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import (
    backup_dir_spec, catalog, load_manifest, load_verification)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import (
    EncryptionError, encrypt_file, normalize_recipients)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import (
    MARKER, OffsiteError, S3Target, Throttle, check_digest, copy_groups, json_bytes, lock_from_params, lock_spec,
    manifest_files, marker_for, object_name, s3_target_spec)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import (
    age_of, checked_policy, choose_sets, copy_chosen, copy_spec, finish_copy_result, local_ids, newest_verified,
    retention_decision, single_sets, unfinished_leftovers)


def copy_set(module, params, target, entry, recipients, throttle, lock, totals):
    set_dir = entry['path']
    manifest = load_manifest(set_dir)
    verification = load_verification(set_dir)
    if not (verification or {}).get('verified'):
        raise BackupError('backup %s is no longer verified; it was not copied' % manifest['id'])
    at_rest = manifest.get('encryption')
    if at_rest:
        recipients = []  # encrypted on the host already (pg_backup_encrypt): its files go up as they are, never twice
    staging = None
    objects = {}
    try:
        if recipients:
            staging = tempfile.mkdtemp(prefix='.stackops-offsite-', dir=params['staging_dir'] or params['backup_dir'])
        for rel, path, expected in manifest_files(set_dir, manifest):
            name = object_name(rel, bool(recipients))
            key = target.key(manifest['id'], name)
            if recipients:
                sealed = os.path.join(staging, 'file.age')
                plain, cipher, dummy = encrypt_file(module, path, sealed, recipients)
                check_digest(path, plain, expected)
                sent = target.upload_file(sealed, key, cipher, lock, throttle)
                sent.update(plaintext_sha256=plain, plaintext_size=os.path.getsize(path))
                os.unlink(sealed)
            else:
                sent = target.upload_file(path, key, expected, lock, throttle)
                sent.update(plaintext_sha256=sent['sha256'], plaintext_size=sent['size'])
            totals['uploaded'] += sent['size'] - sent['resumed_bytes']
            totals['resumed'] += sent.pop('resumed_bytes')
            objects[name] = sent
    finally:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
    problems = target.check_copy(dict(id=manifest['id'], objects=objects), deep=params['remote_check'] == 'download')
    if problems:
        raise OffsiteError('the copy of %s on %s does not match what was sent (%s); it does not count as a copy. Run '
                           'the copy again' % (manifest['id'], target.label, '; '.join(problems[:5])))
    encryption = dict(method='age', recipients=recipients) if recipients else None
    if at_rest:
        # The objects are the set's own .age files and its readable manifest; a fetch downloads them as they are.
        encryption = dict(method='age', recipients=at_rest['recipients'], at_rest=True)
    marker = marker_for(manifest, verification, objects, encryption,
                        sum(meta['size'] for meta in objects.values()))
    target.put_bytes(target.key(manifest['id'], MARKER), json_bytes(marker), lock)


def prune(module, params, target, local):
    policy = checked_policy(params['retention'])
    sets, unfinished = target.catalog(params['database'])
    keep, doomed = retention_decision(single_sets(sets), policy)
    result = dict(kept=keep, deleted=[], unfinished_removed=[], refused=[], locked=[])
    for backup_id in doomed:
        if held_by_lock(target, [backup_id], backup_id, result):
            continue
        if not module.check_mode:
            result['refused'].extend(target.delete_set(backup_id))
        result['deleted'].append(backup_id)
    remove_unfinished(module, target, unfinished_leftovers(unfinished, [params['database']], local), result)
    return result


def held_by_lock(target, backup_ids, label, result):
    """Keep (and report) a copy or group while S3 Object Lock still protects any of its objects: deleting the rest
    would leave a broken copy behind."""
    locks = []
    for backup_id in backup_ids:
        locks.extend(target.locks(target.set_prefix(backup_id)))
    if not locks:
        return False
    until = max(entry['until'] or '' for entry in locks) or None
    result['locked'].append(dict(id=label, until=until, mode=locks[0]['mode'], objects=len(locks),
                                 legal_hold=any(entry['legal_hold'] for entry in locks)))
    result['kept'].setdefault(label, []).append('object lock until %s' % (until or 'its legal hold is removed'))
    return True


def prune_groups(module, params, target, local):
    policy = checked_policy(params['retention'])
    sets, unfinished = target.catalog()
    groups = copy_groups(sets)
    keep, doomed = retention_decision(groups, policy)
    result = dict(kept=keep, deleted=[], deleted_sets=[], unfinished_removed=[], refused=[], locked=[])
    by_id = dict((group['id'], group) for group in groups)
    for group_id in doomed:
        members = by_id[group_id]['sets']
        if held_by_lock(target, members, group_id, result):
            continue
        if not module.check_mode:
            for backup_id in members:
                result['refused'].extend(target.delete_set(backup_id))
        result['deleted'].append(group_id)
        result['deleted_sets'].extend(members)
    databases = set()
    for group in groups:
        databases.update(group['databases'])
    remove_unfinished(module, target, unfinished_leftovers(unfinished, sorted(databases), local), result)
    return result


def remove_unfinished(module, target, leftovers, result):
    for backup_id in leftovers:
        if not module.check_mode:
            result['refused'].extend(target.delete_set(backup_id))
        result['unfinished_removed'].append(backup_id)


def main():
    spec = s3_target_spec()
    spec.update(backup_dir_spec())
    spec.update(lock_spec())
    spec.update(copy_spec())
    spec.update(
        database=dict(type='str'),
        group_id=dict(type='str'),
        remote_check=dict(type='str', choices=['etag', 'download'], default='etag'),
        age_recipients=dict(type='list', elements='str', default=[]),
        staging_dir=dict(type='path'),
        max_bandwidth_mib=dict(type='int', default=0),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, required_one_of=[('database', 'group_id')],
                           mutually_exclusive=[('group_id', 'backup_id')])
    params = module.params
    clock = time.monotonic()
    result = dict(changed=False, copied=[], present=[], uploaded_bytes=0, resumed_bytes=0,
                  throughput_mib_per_second=0.0)
    try:
        target = S3Target(module, params)
        result.update(target=target.label, target_name=target.name)
        recipients = normalize_recipients(params['age_recipients'])
        lock = lock_from_params(params)
        local_sets, partials = catalog(params['backup_dir'], None if params['group_id'] else params['database'])
        remote_sets, dummy = target.catalog(None if params['group_id'] else params['database'])
        remote_ids = set(entry['id'] for entry in remote_sets)
        chosen = choose_sets(params, local_sets, remote_ids)
        throttle = Throttle(params['max_bandwidth_mib'])
        totals = dict(uploaded=0, resumed=0)
        copy_chosen(module, params, chosen, remote_ids, result,
                    lambda entry: copy_set(module, params, target, entry, recipients, throttle, lock, totals))
        result.update(uploaded_bytes=totals['uploaded'], resumed_bytes=totals['resumed'])
        if params['retention'] is not None:
            result['retention'] = (prune_groups if params['group_id'] else prune)(
                module, params, target, local_ids(local_sets, partials))
        if params['group_id']:
            result['group_id'] = params['group_id']
            remote_sets, dummy = target.catalog()
            result.update(newest_verified(
                [dict(group, age_seconds=age_of(group['started_at'])) for group in copy_groups(remote_sets)]))
        else:
            result.update(newest_verified(target.catalog(params['database'])[0]))
    except (BackupError, EncryptionError) as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        what = ('backup group %s' % params['group_id']) if params['group_id'] else params['database']
        module.fail_json(msg='off-site copy of %s failed: %s' % (what, exc), **result)
    module.exit_json(**finish_copy_result(result, time.monotonic() - clock, backup_dir=params['backup_dir'],
                                          database=params['database'], check=module.check_mode))


if __name__ == '__main__':
    main()
