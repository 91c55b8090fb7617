#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_backup_encrypt
short_description: Encrypt a verified local backup set at rest with age
version_added: 0.2.0
description:
  - Encrypts every file of a backup set written by M(stackops.runbooks.pg_backup) to one or more age recipients (the
    Debian C(age) CLI), so the dump, C(globals.sql), config files and volume archives rest on disk as C(<name>.age).
  - Runs only on a set M(stackops.runbooks.pg_backup_verify) has verified (O(require_verified)), so the trial restore
    proved the plaintext. Each file is hashed while it is fed to age and compared with the manifest, so the bytes
    encrypted are the bytes proved.
  - The manifest stays readable (times, sizes, table counts; no rows) so the catalog, retention and the RPO work
    without the key. It lists the ciphertext in C(files) and, under C(encryption), the recipients and the plaintext
    sizes and sha256 recorded before.
  - The encrypted set is built beside the set as C(<id>.partial), which the catalog ignores, fsynced, checked, and
    then swapped with the plaintext set in one atomic step (C(renameat2) C(RENAME_EXCHANGE)); then the plaintext is
    removed. A run killed at any moment leaves the verified plaintext set, or the encrypted set, and at most a
    C(<id>.partial) that the next run of this module or of M(stackops.runbooks.pg_backup) removes.
  - Holds the per-database lock of the backed-up database while it runs.
  - M(stackops.runbooks.pg_backup_restore) and M(stackops.runbooks.pg_backup_verify) decrypt an encrypted set with
    their O(stackops.runbooks.pg_backup_restore#module:age_identity_file) option.
author:
  - stackops maintainers (@stackops)
options:
  backup_id:
    description: Backup set to encrypt.
    type: str
    required: true
  age_recipients:
    description: age public keys (C(age1...)) to encrypt to; any one of their identities can restore the set.
    type: list
    elements: str
    required: true
  require_verified:
    description:
      - Refuse a set that M(stackops.runbooks.pg_backup_verify) has not verified. With V(false) an unverified set is
        encrypted too, and nothing proves it restores until it is verified with the identity file.
    type: bool
    default: true
requirements:
  - the C(age) command (Debian package C(age)) on the managed host
extends_documentation_fragment:
  - stackops.runbooks.postgres.backup_catalog
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_catalog
notes:
  - A set already encrypted is left as it is (V(changed=false)), also when O(age_recipients) changed; sets are
    never encrypted twice.
  - The plaintext files are unlinked, not overwritten; on a filesystem without encryption their blocks stay
    readable to root until they are reused.
  - Check mode reports what would be encrypted and writes nothing.
seealso:
  - module: stackops.runbooks.pg_backup
  - module: stackops.runbooks.pg_backup_verify
  - module: stackops.runbooks.pg_backup_restore
'''

EXAMPLES = r'''
- name: Encrypt the verified backup at rest
  stackops.runbooks.pg_backup_encrypt:
    backup_dir: /var/backups/stackops
    backup_id: appdb-20260101T030000123Z
    age_recipients:
      - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
'''

RETURN = r'''
backup_id:
  description: The set.
  returned: always
  type: str
path:
  description: Directory of the set.
  returned: when the set was found
  type: str
encrypted:
  description: Whether the set is encrypted after this run (in check mode, would be).
  returned: when the set was found
  type: bool
recipients:
  description: The age recipients the set is encrypted to.
  returned: when the set was found
  type: list
  elements: str
files:
  description: Number of files encrypted (in check mode, that would be).
  returned: when the set was found
  type: int
plaintext_size_bytes:
  description: Size of the plaintext files.
  returned: when the set was found
  type: int
size_bytes:
  description: Size of the encrypted files.
  returned: when the set was encrypted by this run
  type: int
removed_stale_partial:
  description: Whether a C(<id>.partial) left by a killed run was removed first.
  returned: when the lock was taken
  type: bool
duration_seconds:
  description: Wall-clock time.
  returned: always
  type: float
'''

import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import (
    backup_dir_spec, check_files, find_set, load_verification)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_lock import DatabaseLock
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    MANIFEST, PARTIAL_SUFFIX, VERIFICATION, BackupError, describe_os_error, ensure_backup_dir, exchange, fsync_path,
    fsync_tree, remove_tree, set_checksum, write_json)
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import (
    EncryptionError, age_binary, encrypt_set, normalize_recipients)
from ansible_collections.stackops.runbooks.plugins.module_utils.fault import fault_point


def build_encrypted(module, set_dir, manifest, recipients, partial):
    """The encrypted set, complete and checked, in ``partial``; returns its manifest."""
    os.mkdir(partial, 0o700)
    encrypted = encrypt_set(module, set_dir, manifest, recipients, partial)
    encrypted['checksum'] = set_checksum(encrypted['files'])
    verification = os.path.join(set_dir, VERIFICATION)
    if os.path.isfile(verification):
        # The verification proved the plaintext, which the manifest still describes (encryption.files).
        shutil.copyfile(verification, os.path.join(partial, VERIFICATION))
    write_json(os.path.join(partial, MANIFEST), encrypted)
    problems = check_files(partial, encrypted, sizes_only=True)
    if problems:
        raise BackupError('the encrypted copy of %s in %s is incomplete (%s); the plaintext set was kept' % (
            manifest['id'], partial, '; '.join(problems[:5])))
    fsync_tree(partial)
    return encrypted


def main():
    spec = backup_dir_spec()
    spec.update(
        backup_id=dict(type='str', required=True),
        age_recipients=dict(type='list', elements='str', required=True),
        require_verified=dict(type='bool', default=True),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    clock = time.monotonic()
    result = dict(changed=False, backup_id=params['backup_id'])
    try:
        recipients = normalize_recipients(params['age_recipients'])
        if not recipients:
            raise BackupError('age_recipients is empty; give the age public keys ("age1...") to encrypt to '
                              '(stackops_offsite_age_recipients)')
        set_dir, manifest = find_set(params['backup_dir'], params['backup_id'])
        if module.check_mode:
            plan(module, params, result, set_dir, manifest, recipients)
            result['duration_seconds'] = round(time.monotonic() - clock, 3)
            module.exit_json(**result)
        # The partial holds ciphertext, then the plaintext set it replaced: owner only.
        os.umask(0o077)
        ensure_backup_dir(params['backup_dir'])
        with DatabaseLock(params['backup_dir'], manifest['database'], 'encrypt', params['lock_timeout']):
            # Read again under the lock: a concurrent run may have encrypted it or retention removed it meanwhile.
            set_dir, manifest = find_set(params['backup_dir'], params['backup_id'])
            partial = set_dir + PARTIAL_SUFFIX
            # Left by a run killed before or after its exchange: ciphertext never published, or the replaced plaintext.
            result['removed_stale_partial'] = os.path.lexists(partial)
            remove_tree(partial)
            result['changed'] = result['removed_stale_partial']
            if plan(module, params, result, set_dir, manifest, recipients):
                try:
                    encrypted = build_encrypted(module, set_dir, manifest, recipients, partial)
                    fault_point('encrypt-exchange')
                    exchange(partial, set_dir)
                    result.update(changed=True, size_bytes=encrypted['size_bytes'])
                    fsync_path(params['backup_dir'])
                    fault_point('encrypt-cleanup')
                except (IOError, OSError) as exc:
                    raise BackupError(describe_os_error(exc, partial))
                finally:
                    # Before the exchange: the unfinished ciphertext. After it: the plaintext, now replaced.
                    remove_tree(partial)
                result['msg'] = 'backup %s encrypted at rest to %s' % (manifest['id'], ', '.join(recipients))
    except (BackupError, EncryptionError) as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        module.fail_json(msg='encrypting backup %s failed: %s; %s' % (
            params['backup_id'], exc, 'it is encrypted' if result.get('size_bytes') else
            'the set was left as it was'), **result)
    result['duration_seconds'] = round(time.monotonic() - clock, 3)
    module.exit_json(**result)


def plan(module, params, result, set_dir, manifest, recipients):
    """Fill in what the set is and will be; True when it is to be encrypted now (in check mode: would be)."""
    result.update(path=set_dir, files=len(manifest['files']), encrypted=bool(manifest.get('encryption')))
    encryption = manifest.get('encryption')
    if encryption:
        result.update(recipients=encryption['recipients'], plaintext_size_bytes=encryption['size_bytes'],
                      msg='backup %s is already encrypted' % manifest['id'])
        if set(encryption['recipients']) != set(recipients):
            module.warn('backup %s is encrypted to %s, not to the recipients given now (%s); it is left as it is: '
                        'sets are never encrypted twice' % (
                            manifest['id'], ', '.join(encryption['recipients']), ', '.join(recipients)))
        return False
    if params['require_verified'] and not (load_verification(set_dir) or {}).get('verified'):
        raise BackupError('backup %s has not been verified; encryption runs only on a set the trial restore proved. '
                          'Verify it with stackops.runbooks.pg_backup_verify first' % manifest['id'])
    age_binary(module)
    result.update(encrypted=True, recipients=recipients, plaintext_size_bytes=manifest['size_bytes'])
    if module.check_mode:
        result.update(changed=True, msg='would encrypt the %d files of %s (%d bytes) to %s' % (
            len(manifest['files']), manifest['id'], manifest['size_bytes'], ', '.join(recipients)))
    return True


if __name__ == '__main__':
    main()
