#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: s3_backup_fetch
short_description: Download an off-site copy into a local directory as a checked backup set
version_added: 0.1.0
description:
  - Downloads one complete copy (O(backup_id), or the newest verified copy of O(database)) from an S3 target into
    C(<dest>/<id>.partial/), checks every object's size and sha256 against the completion marker, decrypts
    encrypted files with O(age_identity_file), checks the plaintext against the set's manifest, and only then makes
    it C(<dest>/<id>) with one rename. The result is an ordinary backup set that
    M(stackops.runbooks.pg_backup_restore) restores from O(dest) the usual safe way.
  - An encrypted copy whose recipients none of the identities in O(age_identity_file) match fails before anything
    is downloaded. A damaged object (one changed byte) is refused; nothing is published then.
  - A set already in O(dest) that matches its manifest is reused (no download).
author:
  - stackops maintainers (@stackops)
options:
  group_id:
    description:
      - Fetch every set of this C(--all-databases) group (V(latest) - the newest complete verified group on the
        target), for C(stackops restore --all-databases --from-remote). The group must be complete there; every
        key is checked before the first download, and each set is checked and published as above.
    type: str
  age_identity_file:
    description: age identity (private key) file to decrypt an encrypted copy with.
    type: path
extends_documentation_fragment:
  - stackops.runbooks.s3
  - stackops.runbooks.offsite.fetch
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
notes:
  - Check mode reads the marker and checks the key, and reports what would be downloaded; it downloads nothing.
seealso:
  - module: stackops.runbooks.s3_backup_copy
  - module: stackops.runbooks.pg_backup_restore
'''

EXAMPLES = r'''
- name: Fetch the newest verified copy of appdb for a restore
  stackops.runbooks.s3_backup_fetch:
    database: appdb
    bucket: acme-db-backups
    prefix: prod/db1
    region: eu-central-1
    dest: /var/tmp/stackops-from-remote
    age_identity_file: /etc/stackops/backup-key.txt
  register: fetched

- name: Restore it
  stackops.runbooks.pg_backup_restore:
    backup_dir: /var/tmp/stackops-from-remote
    backup_id: "{{ fetched.backup_id }}"
    replace: true
    confirm: true
'''

RETURN = r'''
backup_id:
  description: The set fetched.
  returned: when a copy was found and O(group_id) is not given
  type: str
group_id:
  description: The group fetched.
  returned: when O(group_id) is given and a group was found
  type: str
backup_ids:
  description: The sets fetched (with O(group_id), every set of the group).
  returned: when a copy was found
  type: list
  elements: str
path:
  description: Directory of the set in O(dest) (with O(group_id), O(dest)).
  returned: when a copy was found
  type: str
target:
  description: The target, as C(s3://bucket/prefix/ at endpoint).
  returned: always
  type: str
target_name:
  description: O(target_name), or the bucket when none was given.
  returned: always
  type: str
downloaded_bytes:
  description: Bytes downloaded.
  returned: always
  type: int
encrypted:
  description: Whether the copy was encrypted.
  returned: when a copy was found
  type: bool
throughput_mib_per_second:
  description: Download rate including checks and decryption.
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
    PARTIAL_SUFFIX, BackupError, remove_tree, valid_backup_id)
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import (
    EncryptionError, decrypt_file, identity_recipients)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import (
    MARKER, OffsiteError, S3Target, copy_groups, s3_target_spec)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_names import checked_set
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import (
    fetch_spec, pick_copy_group, publish_fetched, require_verified_copy, reusable_set, timed)


def choose(params, target):
    if params['backup_id']:
        if not valid_backup_id(params['backup_id']):
            raise BackupError('backup_id %r is not a backup id' % params['backup_id'])
        marker = target.get_json(target.key(params['backup_id'], MARKER))
        if marker is None or marker.get('id') != params['backup_id']:
            raise OffsiteError('%s holds no complete copy of %s (unfinished copies never restore); list the copies with '
                               'stackops.runbooks.s3_backup_info' % (target.label, params['backup_id']))
        return marker
    if not params['database']:
        raise BackupError('give backup_id or database so the copy to fetch can be chosen')
    sets, dummy = target.catalog(params['database'])
    candidates = [entry for entry in sets if entry['verified'] or not params['require_verified']]
    if not candidates:
        raise OffsiteError('%s holds no %scomplete copy of database %r; copy one with stackops.runbooks.s3_backup_copy '
                           'or give backup_id' % (target.label, 'verified ' if params['require_verified'] else '',
                                                  params['database']))
    return target.get_json(target.key(candidates[0]['id'], MARKER))


def check_key(module, params, marker):
    encryption = marker.get('encryption')
    if not encryption or (encryption.get('at_rest') and not params['age_identity_file']):
        return None  # a set encrypted at rest comes down as it is; pg_backup_restore checks the key before anything
    if encryption.get('method') != 'age':
        raise EncryptionError('copy %s is encrypted with %r, this collection decrypts age only' % (
            marker['id'], encryption.get('method')))
    mine = identity_recipients(module, params['age_identity_file'])
    wanted = encryption.get('recipients') or []
    if not set(mine) & set(wanted):
        raise EncryptionError('copy %s is encrypted to the age recipients %s, but identity file %s holds the keys of %s; '
                              'give the identity file of one of those recipients. Nothing was downloaded or touched'
                              % (marker['id'], ', '.join(wanted), params['age_identity_file'], ', '.join(mine) or 'none'))
    return None if encryption.get('at_rest') else params['age_identity_file']


def fetch(module, params, target, marker, identity, partial):
    downloaded = 0
    for name, meta in sorted(marker['objects'].items()):
        key = target.key(marker['id'], name)
        local = os.path.join(partial, name)
        parent = os.path.dirname(local)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        size, digest = target.download(key, local)
        downloaded += size
        if size != meta['size'] or digest != meta['sha256']:
            raise OffsiteError('%s is damaged: %d bytes with sha256 %s, the copy says %d bytes with sha256 %s; refusing '
                               'it. Use another copy' % (key, size, digest, meta['size'], meta['sha256']))
        if identity:
            plain_path = local[:-len('.age')]
            plain = decrypt_file(module, local, plain_path, identity)
            os.unlink(local)
            if plain != meta['plaintext_sha256']:
                raise OffsiteError('%s decrypted to sha256 %s, the copy says %s; refusing it' % (
                    key, plain, meta['plaintext_sha256']))
    return downloaded


def choose_group(params, target):
    sets, dummy = target.catalog()
    group = pick_copy_group(params, copy_groups(sets), target.label)
    return group, [target.get_json(target.key(backup_id, MARKER)) for backup_id in group['sets']]


def fetch_set(module, params, target, marker, identity, state):
    """One copy into dest: reused when it is there and intact, else downloaded, checked and published."""
    final = os.path.join(params['dest'], marker['id'])
    state['path'] = final
    if reusable_set(final):
        return False, 'backup %s is already in %s and matches its manifest' % (marker['id'], params['dest'])
    if module.check_mode:
        return True, 'would download %s (%d bytes) from %s into %s' % (
            marker['id'], marker.get('remote_size_bytes') or 0, target.label, final)
    state['stage'] = 'downloading'
    partial = final + PARTIAL_SUFFIX
    remove_tree(partial)
    os.makedirs(partial, mode=0o700)
    state['downloaded'] += fetch(module, params, target, marker, identity, partial)
    state['stage'] = 'checking the set against its manifest'
    publish_fetched(partial, final, marker)
    state['path'] = None
    return True, 'downloaded %s from %s into %s and checked it against its manifest' % (
        marker['id'], target.label, final)


def main():
    spec = s3_target_spec()
    spec.update(fetch_spec())
    spec.update(
        group_id=dict(type='str'),
        age_identity_file=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=spec, required_one_of=[('backup_id', 'database', 'group_id')],
                           mutually_exclusive=[('backup_id', 'group_id')], supports_check_mode=True)
    params = module.params
    clock = time.monotonic()
    result = dict(changed=False, downloaded_bytes=0, throughput_mib_per_second=0.0)
    state = dict(stage='choosing the copy', path=None, downloaded=0)
    try:
        target = S3Target(module, params)
        result.update(target=target.label, target_name=target.name)
        if params['group_id']:
            group, markers = choose_group(params, target)
            result['group_id'] = group['id']
        else:
            markers = [choose(params, target)]
        for marker in markers:
            if marker is None:
                raise OffsiteError('a copy of group %s lost its marker while it was read; run the fetch again' % (
                    result.get('group_id')))
            require_verified_copy(params, marker)
        result.update(backup_ids=[marker['id'] for marker in markers],
                      encrypted=any(bool(marker.get('encryption')) for marker in markers))
        if not params['group_id']:
            result['backup_id'] = markers[0]['id']
            result['path'] = os.path.join(params['dest'], markers[0]['id'])
        else:
            result['path'] = params['dest']
        # Every key before the first download: a missing identity touches nothing.
        state['stage'] = 'checking the key'
        identities = [check_key(module, params, marker) for marker in markers]
        # Every name of every copy before the first write: a tampered marker must not reach the disk.
        state['stage'] = 'checking the names of the copy'
        for marker, identity in zip(markers, identities):
            checked_set(params['dest'], marker, target.label, lambda name, marker=marker: target.key(marker['id'], name),
                        decrypted=bool(identity))
        messages = []
        for marker, identity in zip(markers, identities):
            state['stage'] = 'fetching %s' % marker['id']
            changed, msg = fetch_set(module, params, target, marker, identity, state)
            result['changed'] = result['changed'] or changed
            messages.append(msg)
        result['msg'] = '; '.join(messages)
        result['downloaded_bytes'] = state['downloaded']
    except (BackupError, EncryptionError) as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        if state['path'] and state['stage'] != 'checking the key':
            remove_tree(state['path'] + PARTIAL_SUFFIX)
        module.fail_json(msg='fetching the off-site copy failed while %s: %s' % (state['stage'], exc), **result)
    except (IOError, OSError) as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        module.fail_json(msg='fetching the off-site copy failed while %s: %s; check free space and permissions of %s'
                         % (state['stage'], exc, params['dest']), **result)
    module.exit_json(**timed(result, time.monotonic() - clock, 'downloaded_bytes'))


if __name__ == '__main__':
    main()
