# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client-side encryption of backup files with age (the Debian ``age`` CLI).

We wrap the age binary instead of implementing a cipher: the file format, the key handling and the authentication
(a changed byte makes ``age -d`` fail) are age's. The plaintext is hashed while it is fed to age, so the bytes
encrypted are exactly the bytes that were checked against the manifest.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import subprocess
import tempfile

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import check_files
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    BackupError, fsync_path, isoformat, sha256_file, utcnow)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_tools import feed_hashed, tool_version
from ansible_collections.stackops.runbooks.plugins.module_utils.pipeline import CHUNK, describe_rc

AGE_SUFFIX = '.age'


class EncryptionError(BackupError):
    """A failure whose message says what failed, where, and what to do next."""


def age_binary(module, name='age'):
    path = module.get_bin_path(name)
    if not path:
        raise EncryptionError('the %s command is not installed on %s; install the Debian package "age" (scripts/'
                              'bootstrap.sh does) to encrypt or decrypt backups' % (name, os.uname()[1]))
    return path


def normalize_recipients(recipients):
    """age recipients ("age1..." public keys); blank entries and comments dropped, order kept, duplicates removed."""
    seen = []
    for entry in recipients or []:
        entry = (entry or '').strip()
        if entry and not entry.startswith('#') and entry not in seen:
            seen.append(entry)
    return seen


def identity_recipients(module, identity_file):
    """The public keys of the identities in ``identity_file`` (``age-keygen -y``); fails before anything else runs."""
    if not identity_file or not os.path.isfile(identity_file):
        raise EncryptionError('age identity file %r does not exist; restoring an encrypted backup needs the private key '
                              'the set was encrypted to (age_identity_file / stackops_offsite_age_identity_file)'
                              % identity_file)
    if not os.access(identity_file, os.R_OK):
        raise EncryptionError('age identity file %s is not readable by this user; fix its permissions' % identity_file)
    rc, out, err = module.run_command([age_binary(module, 'age-keygen'), '-y', identity_file])
    if rc != 0:
        # age-keygen -y prints only the file name and the kind of problem, never key material.
        raise EncryptionError('age identity file %s holds no usable age identity (%s); give the file age-keygen wrote'
                              % (identity_file, (err or out).strip().splitlines()[-1:] or describe_rc(rc)))
    return [line.strip() for line in out.splitlines() if line.strip().startswith('age1')]


def encrypt_file(module, source, target, recipients):
    """Encrypt ``source`` to ``target`` for ``recipients``. Returns (plaintext sha256, ciphertext sha256, size).

    The ciphertext digest is computed by reading ``target`` back after age closed it (and after an fsync), so it
    describes what is on disk, not what age meant to write.
    """
    recipients = normalize_recipients(recipients)
    if not recipients:
        raise EncryptionError('no age recipients given; set age_recipients to the public keys ("age1...") to encrypt to')
    argv = [age_binary(module), '--encrypt', '--output', target]
    for recipient in recipients:
        argv += ['--recipient', recipient]
    try:
        plain, rc, detail = feed_hashed(argv, source)
    except (IOError, OSError) as exc:
        raise EncryptionError('encrypting %s to %s: %s' % (source, target, exc))
    if rc != 0:
        raise EncryptionError('age could not encrypt %s (%s): %s; check that every recipient is an "age1..." public '
                              'key' % (source, describe_rc(rc), detail[-500:]))
    fsync_path(target)
    return plain, sha256_file(target), os.path.getsize(target)


def decrypt_file(module, source, target, identity_file):
    """Decrypt ``source`` into ``target`` with the identities in ``identity_file``; returns the plaintext sha256.

    age authenticates every chunk: a changed byte makes it fail, and the partial output is removed.
    """
    argv = [age_binary(module), '--decrypt', '--identity', identity_file, source]
    digest = hashlib.sha256()
    err = tempfile.TemporaryFile()
    try:
        with open(target, 'wb') as out:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, close_fds=True)
            for chunk in iter(lambda: proc.stdout.read(CHUNK), b''):
                digest.update(chunk)
                out.write(chunk)
            rc = proc.wait()
        err.seek(0)
        detail = err.read().decode('utf-8', 'replace').strip()
    except (IOError, OSError) as exc:
        raise EncryptionError('decrypting %s: %s' % (source, exc))
    finally:
        err.close()
    if rc != 0:
        try:
            os.unlink(target)
        except OSError:
            pass
        raise EncryptionError('age refused to decrypt %s (%s): %s; the file is damaged or was encrypted to another '
                              'key' % (source, describe_rc(rc), detail[-500:]))
    return digest.hexdigest()


# ---------------------------------------------------------------- whole local backup sets (stackops_backup_encrypt)
#
# An encrypted set keeps its directory layout and a readable manifest (the catalog, retention and the RPO need its
# times, sizes and table counts; it holds no rows). Every other file is stored as ``<name>.age``: ``files`` lists what
# is on disk (ciphertext sizes and sha256, so every check of a set works unchanged), ``encryption.files`` the
# plaintext the manifest recorded before (what the trial restore proved).


def plaintext_manifest(manifest):
    """The manifest as it was before encryption: what a restore checks the decrypted files against."""
    encryption = manifest.get('encryption')
    if not encryption:
        return manifest
    plain = dict(manifest)
    del plain['encryption']
    plain.update(files=encryption['files'], checksum=encryption.get('checksum'), size_bytes=encryption['size_bytes'])
    return plain


def encrypt_set(module, set_dir, manifest, recipients, dest):
    """Encrypt every file of the set in ``set_dir`` into ``dest`` and return the manifest of the encrypted set.

    Each file is hashed while it is fed to age and compared with the manifest: the bytes encrypted are exactly the
    bytes the trial restore proved. Nothing in ``set_dir`` is changed.
    """
    recipients = normalize_recipients(recipients)
    files = {}
    for rel, meta in sorted(manifest['files'].items()):
        source = os.path.join(set_dir, rel)
        target = os.path.join(dest, rel + AGE_SUFFIX)
        if not os.path.isdir(os.path.dirname(target)):
            os.makedirs(os.path.dirname(target))
        plain, cipher, size = encrypt_file(module, source, target, recipients)
        if plain != meta['sha256']:
            raise EncryptionError('%s has sha256 %s, the manifest says %s: the set changed since it was verified; it was '
                                  'not encrypted, verify it again with stackops.runbooks.pg_backup_verify' % (
                                      source, plain, meta['sha256']))
        files[rel + AGE_SUFFIX] = dict(size=size, sha256=cipher)
    encrypted = dict(manifest)
    encrypted.update(files=files, size_bytes=sum(meta['size'] for meta in files.values()), encryption=dict(
        method='age', recipients=recipients, suffix=AGE_SUFFIX, encrypted_at=isoformat(utcnow()),
        tool=tool_version(module, [age_binary(module), '--version']), files=manifest['files'],
        checksum=manifest.get('checksum'), size_bytes=manifest['size_bytes']))
    return encrypted


def require_identity(module, manifest, identity_file):
    """Fail unless ``identity_file`` holds the key of one of the recipients the set was encrypted to. Runs before
    anything is created, dropped, stopped or decrypted."""
    wanted = manifest['encryption']['recipients']
    if not identity_file:
        raise EncryptionError('backup %s is encrypted with age to %s; restoring it needs the identity file of one of them: '
                              'set age_identity_file (stackops_offsite_age_identity_file). Nothing was touched'
                              % (manifest['id'], ', '.join(wanted)))
    mine = identity_recipients(module, identity_file)
    if not set(mine) & set(wanted):
        raise EncryptionError('backup %s is encrypted to the age recipients %s, but identity file %s holds the keys of %s; '
                              'give the identity file of one of those recipients. Nothing was touched'
                              % (manifest['id'], ', '.join(wanted), identity_file, ', '.join(mine) or 'none'))
    return identity_file


def decrypt_set(module, set_dir, manifest, identity_file, dest):
    """Check the ciphertext of the set against the manifest, decrypt it into ``dest`` and check the plaintext.

    Returns (problems, plaintext manifest); with problems, what was decrypted so far is left for the caller to
    remove with ``dest``.
    """
    require_identity(module, manifest, identity_file)
    problems = check_files(set_dir, manifest)
    if problems:
        return problems, None
    plain = plaintext_manifest(manifest)
    suffix = manifest['encryption'].get('suffix', AGE_SUFFIX)
    for rel, meta in sorted(plain['files'].items()):
        target = os.path.join(dest, rel)
        if not os.path.isdir(os.path.dirname(target)):
            os.makedirs(os.path.dirname(target))
        digest = decrypt_file(module, os.path.join(set_dir, rel + suffix), target, identity_file)
        if digest != meta['sha256'] or os.path.getsize(target) != meta['size']:
            problems.append('%s: decrypted to sha256 %s (%d bytes), the manifest says %s (%d bytes)' % (
                rel, digest, os.path.getsize(target), meta['sha256'], meta['size']))
    return problems, plain


def read_decrypted(module, set_dir, manifest, rel, identity_file):
    """The plaintext bytes of one small file (``globals.sql``) of an encrypted set: ciphertext checked against the
    manifest first, plaintext after. Decrypted through a 0600 temporary file beside the set, removed at once."""
    require_identity(module, manifest, identity_file)
    suffix = manifest['encryption'].get('suffix', AGE_SUFFIX)
    expected, stored = manifest['encryption']['files'][rel], manifest['files'][rel + suffix]
    source = os.path.join(set_dir, rel + suffix)
    digest = sha256_file(source) if os.path.isfile(source) else None
    if digest != stored['sha256']:
        raise EncryptionError('%s has sha256 %s, the manifest says %s; the set is damaged, use another one' % (
            source, digest, stored['sha256']))
    handle, target = tempfile.mkstemp(prefix='.stackops-decrypt-', dir=os.path.dirname(set_dir))
    os.close(handle)
    try:
        plain = decrypt_file(module, source, target, identity_file)
        if plain != expected['sha256']:
            raise EncryptionError('%s decrypted to sha256 %s, the manifest says %s; refusing it' % (
                source, plain, expected['sha256']))
        with open(target, 'rb') as data:
            return data.read()
    finally:
        if os.path.exists(target):
            os.unlink(target)
