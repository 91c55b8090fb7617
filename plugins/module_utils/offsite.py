# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The format of an off-site copy of a backup set, whatever the transport (offsite_target.py moves the bytes).

Layout on the target: every object of a set lives below ``<backup id>/`` (below the S3 prefix or the SSH path); the
backup id is the set's identity (the key, never a field inside a document). The files of the set keep their relative
paths (``.age`` appended when encrypted at copy time), ``manifest.json`` and ``verification.json`` come along, and
``stackops-copy.json``, the completion marker, is written last and only after every object was checked against
what was read (and hashed against the manifest) locally. A prefix without the marker is an unfinished copy: it never
counts, is resumed by the next copy and is removed by retention once nothing can resume it.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import datetime
import hashlib
import json
import os
import shutil
import tempfile

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    MANIFEST, VERIFICATION, BackupError, isoformat, utcnow, valid_backup_id)
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import (
    AGE_SUFFIX, EncryptionError, encrypt_file, normalize_recipients)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import copy_entry

MARKER = 'stackops-copy.json'
COPY_FORMAT = 1


class OffsiteError(BackupError):
    """An off-site failure; its message never contains credentials."""


def md5_b64(digest):
    return base64.b64encode(digest).decode('ascii')


def multipart_etag(md5_digests):
    """The ETag S3 gives a multipart upload: MD5 of the concatenated part MD5s, dash, number of parts."""
    return '%s-%d' % (hashlib.md5(b''.join(md5_digests)).hexdigest(), len(md5_digests))


def check_digest(path, actual, expected):
    if expected and actual != expected:
        raise OffsiteError('%s: sha256 %s, manifest says %s; the local set changed or is damaged, nothing was counted '
                           'as copied. Verify it with stackops.runbooks.pg_backup_verify' % (path, actual, expected))


def lock_spec():
    return dict(
        object_lock_mode=dict(type='str', choices=['GOVERNANCE', 'COMPLIANCE']),
        object_lock_days=dict(type='int', default=0),
    )


def lock_from_params(params):
    if not params.get('object_lock_mode'):
        return None
    if int(params.get('object_lock_days') or 0) <= 0:
        raise OffsiteError('object_lock_mode %s needs object_lock_days > 0' % params['object_lock_mode'])
    until = utcnow() + datetime.timedelta(days=int(params['object_lock_days']))
    return dict(mode=params['object_lock_mode'], until=until)


def marker_for(manifest, verification, objects, encryption, remote_size):
    return dict(
        copy_format=COPY_FORMAT, id=manifest['id'], database=manifest['database'],
        started_at=manifest['started_at'], finished_at=manifest['finished_at'],
        size_bytes=manifest['size_bytes'], remote_size_bytes=remote_size, checksum=manifest.get('checksum'),
        verified=bool((verification or {}).get('verified')), verified_at=(verification or {}).get('verified_at'),
        copied_at=isoformat(utcnow()), encryption=encryption, objects=objects,
        # An --all-databases set: remote retention keeps or deletes its group as a whole.
        group=manifest.get('group'), group_databases=manifest.get('group_databases') or [])


def copy_groups(sets):
    """Complete copies of --all-databases groups (newest first): {id, started_at, sets (ids), databases, missing,
    complete, verified}. A group is verified only when it is complete and every one of its copies is verified."""
    groups = {}
    for entry in sets:
        if not entry.get('group'):
            continue
        group = groups.setdefault(entry['group'], dict(id=entry['group'], started_at=entry['started_at'], sets=[],
                                                       databases=[], planned=set(), all_verified=True))
        group['started_at'] = min(group['started_at'], entry['started_at'])
        group['planned'].update(entry.get('group_databases') or [])
        if entry['database'] not in group['databases']:
            group['databases'].append(entry['database'])
        group['sets'].append(entry['id'])
        group['all_verified'] = group['all_verified'] and bool(entry.get('verified'))
    out = []
    for group in groups.values():
        missing = sorted(group.pop('planned') - set(group['databases']))
        group.update(databases=sorted(group['databases']), missing=missing, complete=not missing)
        group['verified'] = group.pop('all_verified') and not missing
        out.append(group)
    out.sort(key=lambda group: group['started_at'], reverse=True)
    return out


def object_name(rel, encrypted):
    return rel + ('.age' if encrypted else '')


def json_bytes(data):
    return (json.dumps(data, indent=2, sort_keys=True) + '\n').encode('utf-8')


def manifest_files(set_dir, manifest):
    """(relative name, local path, expected plaintext sha256) of everything a copy holds besides its marker."""
    entries = [(rel, os.path.join(set_dir, rel), meta['sha256'])
               for rel, meta in sorted((manifest.get('files') or {}).items())]
    entries.append((MANIFEST, os.path.join(set_dir, MANIFEST), None))
    if os.path.isfile(os.path.join(set_dir, VERIFICATION)):
        entries.append((VERIFICATION, os.path.join(set_dir, VERIFICATION), None))
    return entries


def plaintext_problems(manifests, recipients):
    """Why each set (its manifest) may not go to an ssh target while age ``recipients`` are configured; [] when all may.

    An ssh target receives a backup set byte for byte as it is on disk (rsync resumes and checks it against the
    manifest as it is), so with recipients configured only a set encrypted at rest (encryption.encrypt_set) to every
    one of them qualifies: what lands is ciphertext the configured keys open. Anything else would put rows on the
    remote host in plaintext, or sealed to other keys. (Physical backups and WAL have no encryption at rest: those are
    encrypted at copy time on every transport, offsite_pitr.Sender.)
    """
    wanted = normalize_recipients(recipients)
    if not wanted:
        return []
    problems = []
    for manifest in manifests:
        encryption = manifest.get('encryption')
        if not encryption:
            problems.append('%s is not encrypted at rest' % manifest['id'])
            continue
        missing = [key for key in wanted if key not in (encryption.get('recipients') or [])]
        if missing:
            problems.append('%s is encrypted at rest to %s, not to %s' % (
                manifest['id'], ', '.join(encryption.get('recipients') or []) or 'nobody', ', '.join(missing)))
    return problems


def refuse_plaintext(manifests, recipients, label, group_id=None):
    """Raise OffsiteError unless every set about to be sent qualifies (plaintext_problems). Called before the first
    byte goes, with every set of a group, so no part of a group lands unencrypted."""
    problems = plaintext_problems(manifests, recipients)
    if problems:
        what = ('backup group %s' % group_id) if group_id else ', '.join(manifest['id'] for manifest in manifests)
        raise OffsiteError(
            'refusing to copy %s to ssh target %s: age_recipients (stackops_offsite_age_recipients) are set, but %s. '
            'ssh targets receive the files as they are on disk and never encrypt in transit, so nothing was sent. '
            'Set stackops_backup_encrypt: true so every new verified set is encrypted at rest to '
            'stackops_offsite_age_recipients before it is copied (or encrypt this set with '
            'stackops.runbooks.pg_backup_encrypt), or send it to an S3 target, which encrypts at copy time' % (
                what, label, '; '.join(problems)))


def catalog(target, database=None, now=None):
    """(complete copies newest first, unfinished copies) of backup sets on ``target``. A copy counts only with its
    marker; each complete entry carries its marker under ``marker``."""
    now = now or utcnow()
    sets, unfinished = [], []
    for backup_id, marker in sorted(target.children('', MARKER).items()):
        if not valid_backup_id(backup_id):
            continue  # .pitr and anything else that is no backup id
        if marker is None:
            unfinished.append(dict(id=backup_id, location=target.label))
            continue
        if marker.get('copy_format') != COPY_FORMAT or marker.get('id') != backup_id:
            unfinished.append(dict(id=backup_id, location=target.label, problem=marker.get('problem') or (
                'marker does not describe %s (format %r, id %r)' % (
                    backup_id, marker.get('copy_format'), marker.get('id')))))
            continue
        if database is not None and marker.get('database') != database:
            continue
        entry = copy_entry(backup_id, marker, target.label, now)
        entry['marker'] = marker
        sets.append(entry)
    sets.sort(key=lambda entry: entry['started_at'], reverse=True)
    return sets, unfinished


def encryption_refused(exc, what):
    """An encryption failure while copying: nothing is sent in its place, and the message names the setting."""
    return EncryptionError('%s could not be encrypted (%s); nothing of it was sent, not in plaintext either. Fix '
                           'age_recipients (stackops_offsite_age_recipients: age public keys "age1...") and check '
                           'that the age package is installed, or empty it to copy without encryption' % (what, exc))


class Sender(object):
    """Sends local files to a target, age-encrypted first (in a staging directory below ``staging_parent``) when
    recipients are set; the same for backup sets, base backups and WAL, on every transport. A file that cannot be
    encrypted is never sent in plaintext instead."""

    def __init__(self, module, target, recipients, staging_parent, lock, throttle):
        self.module = module
        self.target = target
        self.recipients = normalize_recipients(recipients)
        self.staging_parent = staging_parent
        self.lock = lock
        self.throttle = throttle
        self.staging = None
        self.objects = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.staging:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None

    def seal(self, path, sealed, expected):
        """Encrypt ``path`` to ``sealed``; (plaintext sha256, ciphertext sha256), the plaintext checked first."""
        parent = os.path.dirname(sealed)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o700)
        try:
            plain, cipher, dummy = encrypt_file(self.module, path, sealed, self.recipients)
        except EncryptionError as exc:
            raise encryption_refused(exc, path)
        check_digest(path, plain, expected)
        return plain, cipher

    def send_files(self, local_root, prefix, names, expected=None):
        """Send ``local_root/<name>`` to ``prefix + name`` (``+ .age`` when encrypting) for every name. Returns
        {name: {size, etag (S3), sha256 (of the stored object), plaintext_size, plaintext_sha256, encrypted,
        resumed_bytes}}; ``expected`` ({name: sha256}) is checked against what was read."""
        expected = expected or {}
        names = list(names)
        if not self.recipients:
            sent = self.target.put_files(local_root, prefix, names, expected, self.lock, self.throttle)
            for meta in sent.values():
                meta.update(plaintext_size=meta['size'], plaintext_sha256=meta['sha256'], encrypted=False)
            self.objects += len(names)
            return sent
        if self.staging is None:
            self.staging = tempfile.mkdtemp(prefix='.stackops-offsite-', dir=self.staging_parent)
        sent = {}
        if not self.target.batches:
            # One file at a time: the staging space is that of the largest file.
            for name in names:
                path, sealed = os.path.join(local_root, name), os.path.join(self.staging, 'object' + AGE_SUFFIX)
                plain, cipher = self.seal(path, sealed, expected.get(name))
                try:
                    sent[name] = self.target.put(sealed, prefix + name + AGE_SUFFIX, cipher, self.lock, self.throttle)
                finally:
                    os.unlink(sealed)
                sent[name].update(plaintext_size=os.path.getsize(path), plaintext_sha256=plain, encrypted=True)
            self.objects += len(names)
            return sent
        # One transfer for the whole tree (rsync): every file is sealed first.
        plains, ciphers = {}, {}
        for name in names:
            path = os.path.join(local_root, name)
            sealed = self.seal(path, os.path.join(self.staging, name + AGE_SUFFIX), expected.get(name))
            plains[name] = (os.path.getsize(path),) + sealed
            ciphers[name + AGE_SUFFIX] = plains[name][2]
        stored = self.target.put_files(self.staging, prefix, sorted(ciphers), ciphers, self.lock, self.throttle)
        for name in names:
            size, plain, dummy = plains[name]
            sent[name] = stored[name + AGE_SUFFIX]
            sent[name].update(plaintext_size=size, plaintext_sha256=plain, encrypted=True)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging = None
        self.objects += len(names)
        return sent
