# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Off-site copies of physical base backups and their WAL (PITR), shared by s3_pitr_copy and s3_pitr_fetch.

Layout on the target, below ``<prefix>.pitr/<server>/`` (the leading dot keeps it out of the logical catalog,
whose backup ids never start with one):

- ``base/<backup id>/<path>``: the files of one base backup by their path below the PITR directory
  (``home/<server>/base/<id>/...``, ``home/<server>/meta/<id>-backup.info``, ``verified/<id>.json``), and
  ``base/<backup id>/stackops-copy.json``, the completion marker, written last, only after every object was checked
  and the WAL the backup needs (``begin_wal`` .. ``end_wal``) is in the WAL catalog.
- ``wals/<path>``: archived WAL segments, ``.backup`` labels and timeline ``.history`` files by their path below
  Barman's ``wals/`` directory.
- ``wal-catalog.json``: the WAL objects that count (size, ETag, sha256, mtime, and the plaintext's size and sha256),
  rewritten after each batch. An object that is not in it was never checked and is uploaded again by the next copy.
  Its ``floor`` is the oldest segment remote retention keeps: older WAL Barman still holds locally is not sent again.

With age recipients every object but the marker and the WAL catalog (ids, times, sizes, checksums) is encrypted on
the host before it is sent and stored as ``<path>.age``; the catalog and the marker name each object by its plain
path and say ``encrypted``. Encryption is not deterministic, so "already there" is judged on the plaintext (the
catalog's plaintext size), never by comparing ciphertext.

``pgpass`` (the replication password), Barman's configuration and its ``xlog.db`` stay local: a fetch rebuilds the
xlog.db with ``barman rebuild-xlogdb``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import shutil
import tempfile

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import isoformat, utcnow
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import (
    AGE_SUFFIX, EncryptionError, decrypt_file, encrypt_file, identity_recipients, normalize_recipients)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import MARKER, OffsiteError, S3Target, json_bytes
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_names import (
    check_component, checked_paths, tampered)

ROOT = '.pitr'
WAL_CATALOG = 'wal-catalog.json'
PITR_COPY_FORMAT = 1
SEGMENT = re.compile(r'^[0-9A-F]{24}$')
WAL_NAME = re.compile(r'^[0-9A-F]{24}(\.[0-9A-F]{8}\.backup)?$|^[0-9A-F]{8}\.history$')


def wal_sort_key(name):
    """Order of WAL files: by segment (timeline, log, segment), history files first (they are tiny and always kept)."""
    base = os.path.basename(name)
    if base.endswith('.history'):
        return ('', base)
    return (base[:24], base)


def wal_before(name, cutoff_segment):
    """True for a segment or backup label older than ``cutoff_segment``; history files never count as old."""
    base = os.path.basename(name)
    if base.endswith('.history'):
        return False
    return base[:24] < cutoff_segment


def local_wal_files(wals_dir):
    """{relative path below wals/: full path} of the archived WAL files (xlog.db and anything else left out)."""
    found = {}
    if not os.path.isdir(wals_dir):
        return found
    for root, dummy, files in os.walk(wals_dir):
        for name in files:
            if WAL_NAME.match(name):
                full = os.path.join(root, name)
                found[os.path.relpath(full, wals_dir)] = full
    return found


def base_backup_files(layout, backup_id):
    """(relative path below the PITR directory, full path) of everything one base backup copy holds."""
    entries = []
    base = os.path.join(layout.server_home, 'base', backup_id)
    for root, dummy, files in os.walk(base):
        for name in sorted(files):
            full = os.path.join(root, name)
            entries.append((os.path.relpath(full, layout.root), full))
    for full in (os.path.join(layout.server_home, 'meta', '%s-backup.info' % backup_id),
                 os.path.join(layout.verified, '%s.json' % backup_id)):
        if os.path.isfile(full):
            entries.append((os.path.relpath(full, layout.root), full))
    return sorted(entries)


def open_remote(module, params, result):
    """The PITR part of the S3 target the module's options name; the result gets its target and target_name."""
    target = S3Target(module, params)
    remote = PitrRemote(target, params['server_name'])
    result.update(target=remote.label, target_name=target.name)
    return remote


def newest_segment(rels):
    """Name of the newest WAL segment among archive paths (history and backup label files are no segments)."""
    segments = sorted((rel for rel in rels if not rel.endswith('.history')), key=wal_sort_key)
    return os.path.basename(segments[-1])[:24] if segments else None


class PitrRemote(object):
    """The PITR part of one S3 target for one Barman server."""

    def __init__(self, target, server):
        self.target = target
        self.server = server
        self.root = '%s%s/%s/' % (target.prefix, ROOT, server)
        self.label = 's3://%s/%s' % (target.bucket, self.root)

    def base_prefix(self, backup_id):
        return '%sbase/%s/' % (self.root, backup_id)

    def wal_key(self, rel):
        return '%swals/%s' % (self.root, rel)

    def wal_catalog(self):
        data = self.target.get_json(self.root + WAL_CATALOG)
        if data is None:
            return dict(copy_format=PITR_COPY_FORMAT, server=self.server, files={})
        if data.get('copy_format') != PITR_COPY_FORMAT or data.get('server') != self.server:
            raise OffsiteError('%s%s describes server %r (format %r), not %s; this prefix belongs to another server, '
                               'use another prefix' % (self.label, WAL_CATALOG, data.get('server'),
                                                       data.get('copy_format'), self.server))
        return data

    def save_wal_catalog(self, data, lock=None):
        data['updated_at'] = isoformat(utcnow())
        self.target.put_bytes(self.root + WAL_CATALOG, json_bytes(data), lock)

    def base_ids(self):
        ids, token = [], None
        prefix = self.root + 'base/'
        while True:
            kwargs = dict(Bucket=self.target.bucket, Prefix=prefix, Delimiter='/')
            if token:
                kwargs['ContinuationToken'] = token
            page = self.target.call('listing %s' % prefix, 'list_objects_v2', **kwargs)
            for entry in page.get('CommonPrefixes') or []:
                ids.append(entry['Prefix'][len(prefix):].rstrip('/'))
            if not page.get('IsTruncated'):
                return ids
            token = page.get('NextContinuationToken')

    def bases(self):
        """(complete base backup copies newest first, ids without a valid marker)."""
        complete, unfinished = [], []
        for backup_id in self.base_ids():
            marker = self.target.get_json(self.base_prefix(backup_id) + MARKER)
            if (marker is None or marker.get('copy_format') != PITR_COPY_FORMAT or marker.get('id') != backup_id
                    or marker.get('server') != self.server):
                unfinished.append(backup_id)
                continue
            complete.append(marker)
        complete.sort(key=lambda marker: marker.get('begin_time') or '', reverse=True)
        return complete, unfinished

    def check_objects(self, prefix_key, objects):
        """Problems of objects ({relative name: {size, etag}}) below ``prefix_key``: missing, size or ETag differs."""
        problems = []
        for name, meta in sorted(objects.items()):
            key = prefix_key + stored_name(name, meta)
            found = self.target.head(key)
            if found is None:
                problems.append('%s: missing' % key)
            elif found['size'] != meta['size']:
                problems.append('%s: size %d, copy says %d' % (key, found['size'], meta['size']))
            elif found['etag'] != meta['etag']:
                problems.append('%s: ETag %s, copy says %s (changed or damaged)' % (key, found['etag'], meta['etag']))
        return problems


def base_marker(server, backup, objects, begin_wal, end_wal, recipients=None):
    return dict(
        copy_format=PITR_COPY_FORMAT, kind='physical', id=backup['id'], server=server, status=backup['status'],
        begin_time=backup['begin_time'], end_time=backup['end_time'], begin_lsn=backup['begin_lsn'],
        end_lsn=backup['end_lsn'], begin_wal=begin_wal, end_wal=end_wal, timeline=backup['timeline'],
        systemid=backup.get('systemid'), version=backup.get('version'), size_bytes=backup['size_bytes'],
        verified=bool(backup.get('verified')), verified_at=backup.get('verified_at'), copied_at=isoformat(utcnow()),
        remote_size_bytes=sum(meta['size'] for meta in objects.values()), objects=objects,
        encryption=dict(method='age', recipients=recipients, suffix=AGE_SUFFIX) if recipients else None)


def needed_wal(catalog_files, local_files, begin_wal, end_wal):
    """WAL a base backup cannot be consistent without (begin_wal .. end_wal: both ends and every archived segment in
    between) that the WAL catalog does not hold."""
    have = set(os.path.basename(name) for name in catalog_files)
    wanted = set(name for name in (begin_wal, end_wal) if name)
    for rel in local_files:
        base = os.path.basename(rel)
        if SEGMENT.match(base) and begin_wal and end_wal and begin_wal <= base <= end_wal:
            wanted.add(base)
    return sorted(wanted - have)


def check_fetch_names(layout, remote, marker, catalog):
    """Every name a fetch of ``marker`` and the WAL ``catalog`` turns into a local path, checked before anything is
    written: the base backup id is one name, its objects stay in the staging directory and are the files a base
    backup copy holds (its base directory, its backup.info, its verified record), and WAL stays in wals/.
    Returns the staging directory."""
    backup_id = check_component(marker.get('id'), 'base backup id', remote.label)
    staging = os.path.join(layout.root, '.from-remote-%s.partial' % backup_id)
    objects = marker.get('objects') or {}
    checked_paths(staging, objects, remote.label, lambda name: remote.base_prefix(backup_id) + name)
    # The staged files are moved into the PITR directory by these names: nothing else of it (Barman's configuration,
    # pgpass, other backups) may be named.
    base = '/'.join(('home', layout.server, 'base', backup_id)) + '/'
    allowed = ('/'.join(('home', layout.server, 'meta', '%s-backup.info' % backup_id)),
               '/'.join(('verified', '%s.json' % backup_id)))
    for name in sorted(objects):
        if not (name.startswith(base) or name in allowed):
            raise tampered('object %s' % (remote.base_prefix(backup_id) + name), remote.label,
                           os.path.join(layout.root, name), layout.root,
                           'not a file of base backup %s: those live below %s, or are %s' % (
                               backup_id, base, ' or '.join(allowed)))
    checked_paths(os.path.join(layout.server_home, 'wals'), (catalog.get('files') or {}), remote.label,
                  remote.wal_key)
    return staging


# ------------------------------------------------------------------------------------------------ encryption

def stored_name(rel, meta):
    """Name of the object that holds ``rel``: ``.age`` appended when it was encrypted."""
    return rel + AGE_SUFFIX if meta.get('encrypted') else rel


def plaintext_of(meta):
    """(size, sha256) of the local file an object holds; copies made before encryption existed recorded only one."""
    return meta.get('plaintext_size', meta['size']), meta.get('plaintext_sha256', meta['sha256'])


def refuse_plaintext(exc, what):
    """An encryption failure while copying: nothing is sent in its place, and the message names the setting."""
    return EncryptionError('%s could not be encrypted (%s); nothing of it was sent, not in plaintext either. Fix '
                           'age_recipients (stackops_offsite_age_recipients: age public keys "age1...") and check '
                           'that the age package is installed, or empty it to copy without encryption' % (what, exc))


class Sender(object):
    """Sends local files to keys, age-encrypted first (through a staging file in ``staging_parent``) when
    recipients are set. A file that cannot be encrypted is never sent in plaintext instead."""

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

    def send(self, path, key):
        """Upload ``path`` to ``key`` (``key.age`` when encrypting). Returns {size, etag, sha256 (of the stored
        object), plaintext_size, plaintext_sha256, encrypted, resumed_bytes}."""
        if not self.recipients:
            sent = self.target.upload_file(path, key, None, self.lock, self.throttle)
            sent.update(plaintext_size=sent['size'], plaintext_sha256=sent['sha256'], encrypted=False)
            self.objects += 1
            return sent
        if self.staging is None:
            self.staging = tempfile.mkdtemp(prefix='.stackops-offsite-', dir=self.staging_parent)
        sealed = os.path.join(self.staging, 'object.age')
        try:
            plain, cipher, dummy = encrypt_file(self.module, path, sealed, self.recipients)
        except EncryptionError as exc:
            raise refuse_plaintext(exc, path)
        try:
            sent = self.target.upload_file(sealed, key + AGE_SUFFIX, cipher, self.lock, self.throttle)
        finally:
            os.unlink(sealed)
        sent.update(plaintext_size=os.path.getsize(path), plaintext_sha256=plain, encrypted=True)
        self.objects += 1
        return sent


def wal_todo(files, local, recipients, floor):
    """(archived WAL to send, WAL left out because remote retention already dropped it).

    A file goes up when the catalog lacks it, holds it with another plaintext size, or holds it in plaintext while
    recipients are set (it is replaced by its ciphertext). WAL older than ``floor`` is not sent again: retention
    deleted it off-site on purpose, and Barman keeping it locally would otherwise make every run upload (and, under
    Object Lock, lock) it again only for retention to delete it again."""
    todo, below = [], []
    for rel, path in local.items():
        meta = files.get(rel)
        if meta is not None:
            if plaintext_of(meta)[0] == os.path.getsize(path) and (meta.get('encrypted') or not recipients):
                continue
        elif floor and wal_before(rel, floor):
            below.append(rel)
            continue
        todo.append(rel)
    return sorted(todo, key=wal_sort_key), below


def wal_floor(catalog, begin_wals):
    """Oldest segment worth sending: the catalog's floor, lowered to the begin_wal of a base backup about to be
    copied (its WAL must go up whatever retention did before)."""
    floor = catalog.get('floor')
    for begin in begin_wals:
        if floor and begin and begin < floor:
            floor = begin
    return floor


def require_identity(module, identity_file, encryptions):
    """Before anything is downloaded: an identity file that holds a key of every encrypted part's recipients.
    ``encryptions`` are (what, recipients) of the encrypted parts to fetch."""
    if not encryptions:
        return None
    wanted = []
    for dummy, recipients in encryptions:
        wanted.extend(r for r in recipients if r not in wanted)
    if not identity_file:
        raise EncryptionError('%s is encrypted with age to %s; fetching it needs the identity file of one of them: set '
                              'age_identity_file (stackops_offsite_age_identity_file). Nothing was downloaded' % (
                                  encryptions[0][0], ', '.join(wanted) or 'unknown recipients'))
    mine = identity_recipients(module, identity_file)
    for what, recipients in encryptions:
        if recipients and not set(mine) & set(recipients):
            raise EncryptionError('%s is encrypted to the age recipients %s, but identity file %s holds the keys of %s; '
                                  'give the identity file of one of those recipients (stackops_offsite_age_identity_file).'
                                  ' Nothing was downloaded' % (what, ', '.join(recipients), identity_file,
                                                               ', '.join(mine) or 'none'))
    return identity_file


def fetch_object(target, key, meta, dest, identity_file):
    """Download the object holding ``key`` next to ``dest``; check what is stored (size, sha256), decrypt it when it
    is encrypted and check the plaintext; only then move it in place. Returns the bytes downloaded."""
    parent = os.path.dirname(dest)
    if not os.path.isdir(parent):
        os.makedirs(parent, 0o700)
    tmp = os.path.join(parent, '.stackops-fetch-' + os.path.basename(dest))
    stored = key + AGE_SUFFIX if meta.get('encrypted') else key
    fetched = tmp + AGE_SUFFIX if meta.get('encrypted') else tmp
    size, digest = target.download(stored, fetched)
    if size != meta['size'] or digest != meta['sha256']:
        os.unlink(fetched)
        raise OffsiteError('%s is damaged: %d bytes with sha256 %s, the copy says %d bytes with sha256 %s; refusing it, '
                           'nothing was put in place' % (stored, size, digest, meta['size'], meta['sha256']))
    if meta.get('encrypted'):
        try:
            plain = decrypt_file(target.module, fetched, tmp, identity_file)
        finally:
            os.unlink(fetched)
        want_size, want_sha = plaintext_of(meta)
        if plain != want_sha or os.path.getsize(tmp) != want_size:
            got = os.path.getsize(tmp)
            os.unlink(tmp)
            raise OffsiteError('%s decrypted to %d bytes with sha256 %s, the copy says %d bytes with sha256 %s; refusing '
                               'it, nothing was put in place' % (stored, got, plain, want_size, want_sha))
    os.rename(tmp, dest)
    return size
