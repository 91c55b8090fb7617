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

from ansible_collections.stackops.runbooks.plugins.module_utils.pipeline import CHUNK, describe_rc, widen_pipe

AGE_SUFFIX = '.age'


class EncryptionError(Exception):
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
    """Encrypt ``source`` to ``target`` for ``recipients``. Returns (plaintext sha256, ciphertext sha256, size)."""
    recipients = normalize_recipients(recipients)
    if not recipients:
        raise EncryptionError('no age recipients given; set age_recipients to the public keys ("age1...") to encrypt to')
    argv = [age_binary(module), '--encrypt', '--output', target]
    for recipient in recipients:
        argv += ['--recipient', recipient]
    plain = hashlib.sha256()
    err = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, close_fds=True)
        widen_pipe(proc.stdin)
        try:
            with open(source, 'rb') as handle:
                for chunk in iter(lambda: handle.read(CHUNK), b''):
                    plain.update(chunk)
                    proc.stdin.write(chunk)
        finally:
            try:
                proc.stdin.close()
            except (IOError, OSError):
                pass
            rc = proc.wait()
        err.seek(0)
        detail = err.read().decode('utf-8', 'replace').strip()
    except (IOError, OSError) as exc:
        raise EncryptionError('encrypting %s to %s: %s' % (source, target, exc))
    finally:
        err.close()
    if rc != 0:
        raise EncryptionError('age could not encrypt %s (%s): %s; check that every recipient is an "age1..." public '
                              'key' % (source, describe_rc(rc), detail[-500:]))
    cipher = hashlib.sha256()
    with open(target, 'rb') as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b''):
            cipher.update(chunk)
    return plain.hexdigest(), cipher.hexdigest(), os.path.getsize(target)


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
