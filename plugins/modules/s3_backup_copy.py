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
    description: Database whose sets are copied and whose copies retention prunes.
    type: str
    required: true
  backup_id:
    description: Copy this set (it must be verified). Without it, O(sets) decides.
    type: str
  sets:
    description: Without O(backup_id), copy the newest verified set (V(latest)) or every verified set not yet on the target (V(all)).
    type: str
    choices: [latest, all]
    default: latest
  remote_check:
    description:
      - How the uploaded objects are checked before the copy counts. V(etag) compares sizes and the MD5 the server
        computed; V(download) also reads every object back and compares sha256 digests.
    type: str
    choices: [etag, download]
    default: etag
  age_recipients:
    description: age public keys (C(age1...)) to encrypt to before upload; empty sends the plaintext (still over TLS).
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
  object_lock_mode:
    description: S3 Object Lock mode for the new objects (the bucket must have Object Lock enabled).
    type: str
    choices: [GOVERNANCE, COMPLIANCE]
  object_lock_days:
    description: Days the new objects stay locked with O(object_lock_mode).
    type: int
    default: 0
  retention:
    description: Retention policy of the copies on this target; omit to keep every copy.
    type: dict
    suboptions:
      keep_last:
        description: Newest copies to keep.
        type: int
        default: 7
      keep_daily:
        description: Days with a copy to keep (the newest of each day).
        type: int
        default: 7
      keep_weekly:
        description: ISO weeks with a copy to keep.
        type: int
        default: 4
      keep_monthly:
        description: Months with a copy to keep.
        type: int
        default: 3
extends_documentation_fragment:
  - stackops.runbooks.s3
  - stackops.runbooks.postgres.backup_catalog
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
notes:
  - Check mode lists what would be copied and deleted, after reading the target; it uploads and deletes nothing.
  - Objects under Object Lock that cannot be deleted yet are reported in RV(retention) (C(refused)), not as failures.
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
    - Copies kept (C(kept), id to reasons), deleted (C(deleted)), unfinished copies removed (C(unfinished_removed))
      and objects the target refused to delete (C(refused)).
  returned: when O(retention) is given
  type: dict
latest_verified:
  description: Newest verified complete copy of O(database) on the target after this run (id, age_seconds), or V(null).
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
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_lock import DatabaseLock
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_retention import (
    retention_plan, retention_policy_problem, retention_policy_spec)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    BackupError, ensure_backup_dir, slug, valid_backup_id)
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import (
    EncryptionError, encrypt_file, normalize_recipients)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import (
    MARKER, MIB, OffsiteError, S3Target, Throttle, check_digest, json_bytes, lock_from_params, lock_spec,
    manifest_files, marker_for, object_name, s3_target_spec)


def choose_sets(params, local_sets, remote_ids):
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


def copy_set(module, params, target, entry, recipients, throttle, lock, totals):
    set_dir = entry['path']
    manifest = load_manifest(set_dir)
    verification = load_verification(set_dir)
    if not (verification or {}).get('verified'):
        raise BackupError('backup %s is no longer verified; it was not copied' % manifest['id'])
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
    marker = marker_for(manifest, verification, objects, encryption,
                        sum(meta['size'] for meta in objects.values()))
    target.put_bytes(target.key(manifest['id'], MARKER), json_bytes(marker), lock)


def prune(module, params, target, local_ids):
    policy = params['retention']
    problem = retention_policy_problem(policy)
    if problem:
        raise BackupError(problem)
    sets, unfinished = target.catalog(params['database'])
    keep, doomed = retention_plan(sets, policy['keep_last'], policy['keep_daily'], policy['keep_weekly'],
                                  policy['keep_monthly'])
    result = dict(kept=keep, deleted=[], unfinished_removed=[], refused=[])
    for backup_id in doomed:
        if not module.check_mode:
            result['refused'].extend(target.delete_set(backup_id))
        result['deleted'].append(backup_id)
    # An unfinished copy is resumed by the next run while its local set exists; without it, it is garbage.
    own = slug(params['database']) + '-'
    for entry in unfinished:
        if entry['id'].startswith(own) and entry['id'] not in local_ids and 'problem' not in entry:
            if not module.check_mode:
                result['refused'].extend(target.delete_set(entry['id']))
            result['unfinished_removed'].append(entry['id'])
    return result


def main():
    spec = s3_target_spec()
    spec.update(backup_dir_spec())
    spec.update(lock_spec())
    spec.update(
        database=dict(type='str', required=True),
        backup_id=dict(type='str'),
        sets=dict(type='str', choices=['latest', 'all'], default='latest'),
        remote_check=dict(type='str', choices=['etag', 'download'], default='etag'),
        age_recipients=dict(type='list', elements='str', default=[]),
        staging_dir=dict(type='path'),
        max_bandwidth_mib=dict(type='int', default=0),
        retention=dict(type='dict', options=retention_policy_spec()),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    clock = time.monotonic()
    result = dict(changed=False, copied=[], present=[], uploaded_bytes=0, resumed_bytes=0,
                  throughput_mib_per_second=0.0)
    try:
        target = S3Target(module, params)
        result.update(target=target.label, target_name=target.name)
        recipients = normalize_recipients(params['age_recipients'])
        lock = lock_from_params(params)
        local_sets, partials = catalog(params['backup_dir'], params['database'])
        remote_sets, dummy = target.catalog(params['database'])
        remote_ids = set(entry['id'] for entry in remote_sets)
        chosen = choose_sets(params, local_sets, remote_ids)
        throttle = Throttle(params['max_bandwidth_mib'])
        totals = dict(uploaded=0, resumed=0)
        for entry in chosen:
            if entry['id'] in remote_ids:
                result['present'].append(entry['id'])
                continue
            result['copied'].append(entry['id'])
            if module.check_mode:
                continue
            ensure_backup_dir(params['backup_dir'])
            with DatabaseLock(params['backup_dir'], params['database'], 'offsite copy', params['lock_timeout']):
                if not os.path.isdir(entry['path']):
                    raise BackupError('backup %s was deleted before it could be copied' % entry['id'])
                copy_set(module, params, target, entry, recipients, throttle, lock, totals)
        result.update(uploaded_bytes=totals['uploaded'], resumed_bytes=totals['resumed'])
        if params['retention'] is not None:
            local_ids = set(entry['id'] for entry in local_sets) | set(entry['id'] for entry in partials)
            result['retention'] = prune(module, params, target, local_ids)
        remote_sets, dummy = target.catalog(params['database'])
        newest = [entry for entry in remote_sets if entry['verified']][:1]
        result['latest_verified'] = dict(id=newest[0]['id'], age_seconds=newest[0]['age_seconds']) if newest else None
        result['rpo_seconds'] = newest[0]['age_seconds'] if newest else None
    except (BackupError, EncryptionError) as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        module.fail_json(msg='off-site copy of %s failed: %s' % (params['database'], exc), **result)
    elapsed = time.monotonic() - clock
    result['changed'] = bool(result['copied'] or (result.get('retention') or {}).get('deleted')
                             or (result.get('retention') or {}).get('unfinished_removed'))
    result['duration_seconds'] = round(elapsed, 3)
    if result['uploaded_bytes']:
        result['throughput_mib_per_second'] = round(result['uploaded_bytes'] / MIB / max(elapsed, 0.001), 1)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
