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
  database:
    description: Database whose newest verified copy is fetched when O(backup_id) is not given.
    type: str
  backup_id:
    description: Copy to fetch.
    type: str
  dest:
    description: Directory to place the set in (created if missing); use a work directory, not the backup dir of a live host.
    type: path
    required: true
  age_identity_file:
    description: age identity (private key) file to decrypt an encrypted copy with.
    type: path
  require_verified:
    description: Refuse copies of sets that were not verified before they were copied.
    type: bool
    default: true
extends_documentation_fragment:
  - stackops.runbooks.s3
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
  returned: when a copy was found
  type: str
path:
  description: Directory of the set in O(dest).
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
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import check_files, load_manifest
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    MANIFEST, PARTIAL_SUFFIX, BackupError, publish, remove_tree, valid_backup_id)
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import (
    EncryptionError, decrypt_file, identity_recipients)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import (
    MARKER, MIB, OffsiteError, S3Target, s3_target_spec)


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
    if not encryption:
        return None
    if encryption.get('method') != 'age':
        raise EncryptionError('copy %s is encrypted with %r, this collection decrypts age only' % (
            marker['id'], encryption.get('method')))
    mine = identity_recipients(module, params['age_identity_file'])
    wanted = encryption.get('recipients') or []
    if not set(mine) & set(wanted):
        raise EncryptionError('copy %s is encrypted to the age recipients %s, but identity file %s holds the keys of %s; '
                              'give the identity file of one of those recipients. Nothing was downloaded or touched'
                              % (marker['id'], ', '.join(wanted), params['age_identity_file'], ', '.join(mine) or 'none'))
    return params['age_identity_file']


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


def main():
    spec = s3_target_spec()
    spec.update(
        database=dict(type='str'),
        backup_id=dict(type='str'),
        dest=dict(type='path', required=True),
        age_identity_file=dict(type='path'),
        require_verified=dict(type='bool', default=True),
    )
    module = AnsibleModule(argument_spec=spec, required_one_of=[('backup_id', 'database')], supports_check_mode=True)
    params = module.params
    clock = time.monotonic()
    result = dict(changed=False, downloaded_bytes=0, throughput_mib_per_second=0.0)
    stage = 'choosing the copy'
    try:
        target = S3Target(module, params)
        result.update(target=target.label, target_name=target.name)
        marker = choose(params, target)
        if params['require_verified'] and not marker.get('verified'):
            raise OffsiteError('copy %s was not verified before it was copied; set require_verified=false to fetch it '
                               'anyway' % marker['id'])
        result.update(backup_id=marker['id'], encrypted=bool(marker.get('encryption')))
        stage = 'checking the key'
        identity = check_key(module, params, marker)
        final = os.path.join(params['dest'], marker['id'])
        result['path'] = final
        if os.path.isdir(final):
            problems = check_files(final, load_manifest(final))
            if problems:
                raise BackupError('%s already exists and does not match its manifest (%s); remove it and fetch again'
                                  % (final, '; '.join(problems[:3])))
            result['msg'] = 'backup %s is already in %s and matches its manifest' % (marker['id'], params['dest'])
        elif module.check_mode:
            result.update(changed=True, msg='would download %s (%d bytes) from %s into %s' % (
                marker['id'], marker.get('remote_size_bytes') or 0, target.label, final))
        else:
            stage = 'downloading'
            partial = final + PARTIAL_SUFFIX
            remove_tree(partial)
            os.makedirs(partial, mode=0o700)
            result['downloaded_bytes'] = fetch(module, params, target, marker, identity, partial)
            stage = 'checking the set against its manifest'
            manifest = load_manifest(partial)
            problems = check_files(partial, manifest)
            if manifest.get('id') != marker['id'] or manifest.get('checksum') != marker.get('checksum'):
                problems.append('%s describes %s (checksum %s), the copy is %s (checksum %s)' % (
                    MANIFEST, manifest.get('id'), manifest.get('checksum'), marker['id'], marker.get('checksum')))
            if problems:
                raise OffsiteError('the downloaded set %s does not match its manifest (%s); refusing it, %s was not '
                                   'published' % (marker['id'], '; '.join(problems[:5]), final))
            publish(partial, final)
            result.update(changed=True, msg='downloaded %s from %s into %s and checked it against its manifest' % (
                marker['id'], target.label, final))
    except (BackupError, EncryptionError) as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        partial = result.get('path') and result['path'] + PARTIAL_SUFFIX
        if partial and stage != 'checking the key':
            remove_tree(partial)
        module.fail_json(msg='fetching the off-site copy failed while %s: %s' % (stage, exc), **result)
    except (IOError, OSError) as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        module.fail_json(msg='fetching the off-site copy failed while %s: %s; check free space and permissions of %s'
                         % (stage, exc, params['dest']), **result)
    elapsed = time.monotonic() - clock
    result['duration_seconds'] = round(elapsed, 3)
    if result['downloaded_bytes']:
        result['throughput_mib_per_second'] = round(result['downloaded_bytes'] / MIB / max(elapsed, 0.001), 1)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
