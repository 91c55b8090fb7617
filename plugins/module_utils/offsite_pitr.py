# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Off-site copies of physical base backups and their WAL (PITR) on any target (offsite_target.py): what
offsite_copy and offsite_fetch do with ``kind: pitr``.

Layout on the target, below ``.pitr/<server>/`` (below the S3 prefix or the SSH path) (the leading dot keeps it out of the logical catalog,
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

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError, isoformat, sha256_file, utcnow
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import (
    AGE_SUFFIX, EncryptionError, decrypt_file, identity_recipients)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import (
    MARKER, OffsiteError, Sender, json_bytes, lock_from_params)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_names import (
    check_component, checked_paths, tampered)
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    Barman, Layout, check_target_value, choose_backup, load_marks, parse_backup_info, physical_catalog)

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


def open_remote(target, params, result):
    """The PITR part of ``target`` for the module's server; the result gets its target and target_name."""
    remote = PitrRemote(target, params['server_name'])
    result.update(target=remote.label, target_name=target.name)
    return remote


def newest_segment(rels):
    """Name of the newest WAL segment among archive paths (history and backup label files are no segments)."""
    segments = sorted((rel for rel in rels if not rel.endswith('.history')), key=wal_sort_key)
    return os.path.basename(segments[-1])[:24] if segments else None


class PitrRemote(object):
    """The PITR part of one target for one Barman server; keys are relative to the target's root."""

    def __init__(self, target, server):
        self.target = target
        self.server = server
        self.root = '%s/%s/' % (ROOT, server)
        self.label = target.url(self.root)

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

    def bases(self):
        """(complete base backup copies newest first, ids without a valid marker)."""
        complete, unfinished = [], []
        for backup_id, marker in sorted(self.target.children(self.root + 'base/', MARKER).items()):
            if (marker is None or marker.get('copy_format') != PITR_COPY_FORMAT or marker.get('id') != backup_id
                    or marker.get('server') != self.server):
                unfinished.append(backup_id)
                continue
            complete.append(marker)
        complete.sort(key=lambda marker: marker.get('begin_time') or '', reverse=True)
        return complete, unfinished

    def check_objects(self, prefix, objects, deep=False):
        """Problems of objects ({relative name: record}) below ``prefix``: missing, size or digest differs."""
        stored = dict((stored_name(name, meta), meta) for name, meta in objects.items())
        return list(self.target.mismatched(prefix, stored, deep).values())


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


def settle(module, fetched, meta, dest, identity_file, what):
    """A downloaded object at ``fetched``: check what is stored (size, sha256), decrypt it to ``dest`` when it is
    encrypted and check the plaintext, else move it to ``dest``. Nothing damaged is ever put in place."""
    size, digest = os.path.getsize(fetched), sha256_file(fetched)
    if size != meta['size'] or digest != meta['sha256']:
        os.unlink(fetched)
        raise OffsiteError('%s is damaged: %d bytes with sha256 %s, the copy says %d bytes with sha256 %s; refusing it, '
                           'nothing was put in place' % (what, size, digest, meta['size'], meta['sha256']))
    parent = os.path.dirname(dest)
    if not os.path.isdir(parent):
        os.makedirs(parent, 0o700)
    if not meta.get('encrypted'):
        os.rename(fetched, dest)
        return size
    tmp = os.path.join(parent, '.stackops-fetch-' + os.path.basename(dest))
    try:
        plain = decrypt_file(module, fetched, tmp, identity_file)
    finally:
        os.unlink(fetched)
    want_size, want_sha = plaintext_of(meta)
    if plain != want_sha or os.path.getsize(tmp) != want_size:
        got = os.path.getsize(tmp)
        os.unlink(tmp)
        raise OffsiteError('%s decrypted to %d bytes with sha256 %s, the copy says %d bytes with sha256 %s; refusing '
                           'it, nothing was put in place' % (what, got, plain, want_size, want_sha))
    os.rename(tmp, dest)
    return size


def fetch_objects(module, target, prefix, objects, staging, place, identity_file):
    """Download ``objects`` ({rel: record}) below ``prefix`` into ``staging`` in one batch, then check (and decrypt)
    each into ``place(rel)``. Returns the bytes downloaded."""
    stored = dict((stored_name(rel, meta), rel) for rel, meta in objects.items())
    target.get_files(prefix, sorted(stored), staging)
    total = 0
    for name, rel in sorted(stored.items()):
        total += settle(module, os.path.join(staging, name), objects[rel], place(rel), identity_file,
                        target.where(prefix + name))
    return total


# ------------------------------------------------------------------------------------------------ copy

SAVE_EVERY = 64  # WAL files between catalog writes: a killed run loses at most this much checked work


def choose_bases(params, sets, remote_ids):
    done = [entry for entry in sets if entry['status'] == 'DONE']
    if params['backup_id']:
        chosen = [entry for entry in done if entry['id'] == params['backup_id']]
        if not chosen:
            raise BackupError('base backup %s is not a complete (DONE) backup of %s; see `stackops pitr status`' % (
                params['backup_id'], params['server_name']))
        if not chosen[0]['verified']:
            raise BackupError('base backup %s is not verified; only verified base backups are copied off-site. Take '
                              'a verified one with `stackops backup --physical`' % params['backup_id'])
        return chosen
    verified = [entry for entry in done if entry['verified']]
    if params['base_backups'] == 'none':
        return []
    if params['base_backups'] == 'latest':
        return verified[:1]
    return [entry for entry in verified if entry['id'] not in remote_ids]


def deep_check(params):
    return params['remote_check'] in ('download', 'sha256')


def ship_wal(module, params, remote, catalog, wals_dir, local, sender, floor, totals):
    files = catalog['files']
    todo, below = wal_todo(files, local, sender.recipients, floor)
    totals.update(wal_skipped=len(local) - len(todo), wal_below_retention=len(below))
    if module.check_mode:
        totals['wal_uploaded'] = len(todo)
        return
    if sender.recipients:
        catalog['encryption'] = dict(method='age', recipients=sender.recipients, suffix=AGE_SUFFIX)
    replaced = []
    prefix = remote.wal_key('')
    # In batches: one transfer each, then every object of it checked, then the catalog written.
    for start in range(0, len(todo), SAVE_EVERY):
        batch = todo[start:start + SAVE_EVERY]
        sent = sender.send_files(wals_dir, prefix, batch)
        problems = remote.check_objects(prefix, sent, deep_check(params))
        if problems:
            raise OffsiteError('WAL on %s does not match what was sent (%s); it does not count. Run the copy again'
                               % (remote.label, '; '.join(problems[:5])))
        for rel in batch:
            meta = sent[rel]
            totals['uploaded'] += meta['size'] - meta.pop('resumed_bytes')
            old = files.get(rel)
            if old is not None and stored_name(rel, old) != stored_name(rel, meta):
                replaced.append(remote.wal_key(stored_name(rel, old)))
            files[rel] = dict(size=meta['size'], etag=meta.get('etag'), sha256=meta['sha256'],
                              encrypted=meta['encrypted'], plaintext_size=meta['plaintext_size'],
                              plaintext_sha256=meta['plaintext_sha256'], mtime=os.path.getmtime(local[rel]))
            totals['wal_uploaded'] += 1
        remote.save_wal_catalog(catalog, sender.lock)
    # Plaintext copied before recipients were set, now replaced by its ciphertext in the catalog.
    for key in replaced:
        totals['plaintext_refused'].extend(remote.target.delete_key(key))


def copy_base(params, layout, remote, backup, catalog, local_wal, sender):
    info = parse_backup_info(os.path.join(layout.server_home, 'meta', '%s-backup.info' % backup['id']))
    begin_wal, end_wal = info.get('begin_wal'), info.get('end_wal')
    missing = needed_wal(catalog['files'], local_wal, begin_wal, end_wal)
    if missing:
        raise OffsiteError('base backup %s needs WAL %s, which is not in the off-site WAL catalog (not archived '
                           'locally?); it was not counted as copied. Run `barman -c %s/barman.conf check-backup %s %s`'
                           % (backup['id'], ', '.join(missing[:5]), layout.root, layout.server, backup['id']))
    prefix = remote.base_prefix(backup['id'])
    objects = sender.send_files(layout.root, prefix, [rel for rel, dummy in base_backup_files(layout, backup['id'])])
    uploaded = sum(meta['size'] - meta.pop('resumed_bytes') for meta in objects.values())
    problems = remote.check_objects(prefix, objects, deep_check(params))
    if problems:
        raise OffsiteError('the copy of base backup %s on %s does not match what was sent (%s); it does not count. '
                           'Run the copy again' % (backup['id'], remote.label, '; '.join(problems[:5])))
    marker = base_marker(params['server_name'], backup, objects, begin_wal, end_wal, sender.recipients)
    remote.target.put_bytes(prefix + MARKER, json_bytes(marker), sender.lock)
    sender.objects += 1
    return uploaded


def prune(module, params, remote, catalog, lock):
    keep_last = max(int(params['retention'].get('keep_last') or 1), 1)
    bases, unfinished = remote.bases()
    verified = [marker for marker in bases if marker.get('verified')]
    kept_ids = [marker['id'] for marker in verified[:keep_last]]
    result = dict(kept=dict((backup_id, ['last']) for backup_id in kept_ids), deleted=[], wal_deleted=0,
                  wal_cutoff=None, locked=[], refused=[])
    if verified:
        result['kept'][verified[0]['id']].append('newest verified')
    doomed = [marker for marker in bases if marker['id'] not in kept_ids]
    # A copy still resumable by its local base backup would only be uploaded again: remove unfinished ones too.
    local = set(entry['id'] for entry in physical_catalog(Layout(params['pitr_dir'], params['server_name'])))
    doomed_ids = [marker['id'] for marker in doomed] + [bid for bid in unfinished if bid not in local]
    for backup_id in doomed_ids:
        locks = remote.target.locks(remote.base_prefix(backup_id))
        if locks:
            until = max(entry['until'] or '' for entry in locks) or None
            result['locked'].append(dict(id=backup_id, until=until, mode=locks[0]['mode'], objects=len(locks)))
            result['kept'].setdefault(backup_id, []).append('object lock until %s' % (until or 'legal hold removed'))
            continue
        if not module.check_mode:
            result['refused'].extend(remote.target.delete_prefix(remote.base_prefix(backup_id), MARKER))
        result['deleted'].append(backup_id)
    kept_markers = [marker for marker in bases if marker['id'] in result['kept']]
    if not kept_markers:
        return result  # nothing proven restorable on the target: keep every WAL
    cutoff = min(marker['begin_wal'] for marker in kept_markers if marker.get('begin_wal'))
    result['wal_cutoff'] = cutoff
    old = sorted(rel for rel in catalog['files'] if wal_before(rel, cutoff))
    result['wal_deleted'] = len(old)
    if module.check_mode or (not old and catalog.get('floor') == cutoff):
        return result
    # Out of the catalog first (it stops counting), then deleted; a kill in between leaves garbage, never a hole.
    # The floor keeps the next runs from sending what is deleted here again.
    doomed = [(rel, catalog['files'].pop(rel)) for rel in old]
    catalog['floor'] = cutoff
    remote.save_wal_catalog(catalog, lock)
    result['catalog_written'] = True
    for rel, meta in doomed:
        result['refused'].extend(remote.target.delete_key(remote.wal_key(stored_name(rel, meta))))
    return result


def copy(module, params, target, result, throttle):
    """offsite_copy with kind=pitr: the new WAL, then the chosen verified base backups, then retention."""
    result.update(copied=[], present=[], wal_uploaded=0, wal_skipped=0, wal_below_retention=0, objects_uploaded=0,
                  uploaded_bytes=0, wal_last=None, encrypted=False)
    layout = Layout(params['pitr_dir'], params['server_name'])
    if not os.path.isdir(layout.server_home):
        raise BackupError('%s holds no Barman catalog of server %s; run `stackops pitr enable` and `stackops backup '
                          '--physical` first' % (params['pitr_dir'], params['server_name']))
    remote = open_remote(target, params, result)
    lock = lock_from_params(params)
    if not module.check_mode:
        # Finished segments still in streaming/ go into the archive first, so they are shipped now.
        Barman(module, layout).run(['archive-wal', layout.server], check=False)
    catalog = remote.wal_catalog()
    bases, dummy = remote.bases()
    remote_ids = set(marker['id'] for marker in bases)
    chosen = choose_bases(params, physical_catalog(layout), remote_ids)
    sender = Sender(module, target, params['age_recipients'], params['staging_dir'] or layout.root, lock, throttle)
    result['encrypted'] = bool(sender.recipients)
    totals = dict(uploaded=0, wal_uploaded=0, wal_skipped=0, wal_below_retention=0, plaintext_refused=[])
    local_wal = local_wal_files(os.path.join(layout.server_home, 'wals'))
    infos = [os.path.join(layout.server_home, 'meta', '%s-backup.info' % backup['id'])
             for backup in chosen if backup['id'] not in remote_ids]
    floor = wal_floor(catalog, [parse_backup_info(path).get('begin_wal') for path in infos])
    with sender:
        ship_wal(module, params, remote, catalog, os.path.join(layout.server_home, 'wals'), local_wal, sender, floor,
                 totals)
        for backup in chosen:
            if backup['id'] in remote_ids:
                result['present'].append(backup['id'])
                continue
            result['copied'].append(backup['id'])
            if not module.check_mode:
                totals['uploaded'] += copy_base(params, layout, remote, backup, catalog, local_wal, sender)
    result.update(wal_uploaded=totals['wal_uploaded'], wal_skipped=totals['wal_skipped'],
                  wal_below_retention=totals['wal_below_retention'], uploaded_bytes=totals['uploaded'],
                  objects_uploaded=sender.objects)
    if totals['plaintext_refused']:
        result['plaintext_refused'] = totals['plaintext_refused']
    if params['retention'] is not None:
        result['retention'] = prune(module, params, remote, catalog, lock)
    result['wal_last'] = newest_segment(catalog['files'])
    bases, dummy = remote.bases()
    newest = ([marker for marker in bases if marker.get('verified')] or [None])[0]
    result['latest_verified'] = dict(id=newest['id'], end_time=newest.get('end_time')) if newest else None
    kept = result.get('retention') or {}
    catalog_written = kept.pop('catalog_written', False)
    result['changed'] = bool(result['copied'] or result['objects_uploaded'] or kept.get('deleted')
                             or kept.get('wal_deleted') or catalog_written)
    return result


# ------------------------------------------------------------------------------------------------ fetch

def restore_point_lsn(layout, name):
    return (load_marks(layout).get(name) or {}).get('lsn')


def choose(params, layout, bases):
    candidates = [marker for marker in bases if marker.get('verified') or not params['require_verified']]
    if params['backup_id']:
        chosen = [marker for marker in bases if marker['id'] == params['backup_id']]
        if not chosen:
            raise OffsiteError('the target holds no complete copy of base backup %s (copies: %s)' % (
                params['backup_id'], ', '.join(marker['id'] for marker in bases) or 'none'))
        if params['require_verified'] and not chosen[0].get('verified'):
            raise OffsiteError('base backup copy %s was not verified; set require_verified=false to use it' %
                               params['backup_id'])
        return chosen[0]
    if not candidates:
        raise OffsiteError('the target holds no complete %sbase backup copy of %s; copy one with `stackops backup '
                           '--physical` and stackops_offsite_targets set' % (
                               'verified ' if params['require_verified'] else '', params['server_name']))
    kind, value = params['target'], params['target_value']
    check_target_value(kind, value)
    if kind == 'name':
        lsn = restore_point_lsn(layout, value)
        picked = choose_backup(candidates, 'lsn', lsn) if lsn else candidates[-1]
    else:
        picked = choose_backup(candidates, kind, value)
    if picked is None:
        raise OffsiteError('no base backup copy ends before the target %s %s; the oldest copy ends %s' % (
            kind, value, candidates[-1].get('end_time')))
    return picked


def matches(path, meta):
    size, digest = plaintext_of(meta)
    return os.path.isfile(path) and os.path.getsize(path) == size and sha256_file(path) == digest


def encrypted_parts(marker, catalog):
    """(what, recipients) of the encrypted parts a fetch of ``marker`` and the WAL after it needs."""
    parts = []
    if any(meta.get('encrypted') for meta in marker['objects'].values()):
        parts.append(('base backup copy %s' % marker['id'], (marker.get('encryption') or {}).get('recipients') or []))
    if any(meta.get('encrypted') for rel, meta in catalog['files'].items() if not wal_before(rel, marker['begin_wal'])):
        parts.append(('the WAL catalog', (catalog.get('encryption') or {}).get('recipients') or []))
    return parts


def fetch_base(module, layout, remote, marker, state, identity=None):
    """Base files into a staging directory, then base/<id>/ moved in, verified/<id>.json, and backup.info last."""
    objects = marker['objects']
    backup_id = marker['id']
    base_rel = os.path.join('home', layout.server, 'base', backup_id)
    info_rel = os.path.join('home', layout.server, 'meta', '%s-backup.info' % backup_id)
    final_info = os.path.join(layout.root, info_rel)
    if os.path.isfile(final_info) and all(matches(os.path.join(layout.root, rel), meta) for rel, meta in objects.items()):
        return False
    if module.check_mode:
        state['downloaded'] += sum(meta['size'] for meta in objects.values())
        return True
    staging = os.path.join(layout.root, '.from-remote-%s.partial' % backup_id)
    arrived = staging + '.download'
    shutil.rmtree(staging, ignore_errors=True)
    state['downloaded'] += fetch_objects(module, remote.target, remote.base_prefix(backup_id), objects, arrived,
                                         lambda rel: os.path.join(staging, rel), identity)
    shutil.rmtree(arrived, ignore_errors=True)
    staged_base = os.path.join(staging, base_rel)
    final_base = os.path.join(layout.root, base_rel)
    if os.path.isdir(staged_base):
        if os.path.isdir(final_base):
            shutil.rmtree(final_base)  # it did not match its copy (checked above): the checked one replaces it
        if not os.path.isdir(os.path.dirname(final_base)):
            os.makedirs(os.path.dirname(final_base), 0o700)
        os.rename(staged_base, final_base)
    for rel in sorted(objects):
        staged = os.path.join(staging, rel)
        if rel != info_rel and os.path.isfile(staged):
            dest = os.path.join(layout.root, rel)
            if not os.path.isdir(os.path.dirname(dest)):
                os.makedirs(os.path.dirname(dest), 0o700)
            os.rename(staged, dest)
    staged_info = os.path.join(staging, info_rel)
    if not os.path.isdir(os.path.dirname(final_info)):
        os.makedirs(os.path.dirname(final_info), 0o700)
    os.rename(staged_info, final_info)
    shutil.rmtree(staging, ignore_errors=True)
    return True


def fetch_wal(module, layout, remote, catalog, marker, state, identity=None):
    wals = os.path.join(layout.server_home, 'wals')
    wanted = sorted((rel for rel in catalog['files'] if not wal_before(rel, marker['begin_wal'])), key=wal_sort_key)
    todo = {}
    for rel in wanted:
        meta = catalog['files'][rel]
        dest = os.path.join(wals, rel)
        if matches(dest, meta):
            state['wal_present'] += 1
            continue
        if os.path.exists(dest):
            raise OffsiteError('%s exists and differs from its off-site copy (size or sha256); move it away and run '
                               'again. Nothing was overwritten' % dest)
        state['wal_downloaded'] += 1
        todo[rel] = meta
    if module.check_mode:
        state['downloaded'] += sum(meta['size'] for meta in todo.values())
    elif todo:
        # Downloaded beside the archive (never inside it, where Barman would see half a segment), then moved in.
        arrived = os.path.join(layout.root, '.from-remote-wal.partial')
        state['downloaded'] += fetch_objects(module, remote.target, remote.wal_key(''), todo, arrived,
                                             lambda rel: os.path.join(wals, rel), identity)
        shutil.rmtree(arrived, ignore_errors=True)
        for rel, meta in todo.items():
            if meta.get('mtime'):
                os.utime(os.path.join(wals, rel), (meta['mtime'], meta['mtime']))
    return newest_segment(wanted)


def fetch(module, params, target, result):
    """offsite_fetch with kind=pitr: the base backup the recovery target needs and every WAL after it."""
    result.update(wal_downloaded=0, wal_present=0, wal_last=None, downloaded_bytes=0)
    state = dict(downloaded=0, wal_downloaded=0, wal_present=0)
    layout = Layout(params['pitr_dir'], params['server_name'])
    if not os.path.isfile(layout.server_conf):
        raise BackupError('no Barman configuration for %s in %s; run `stackops pitr enable` on this host first (it '
                          'writes the configuration and streams WAL again), then restore from remote' % (
                              layout.server, layout.conf_dir))
    remote = open_remote(target, params, result)
    bases, dummy = remote.bases()
    marker = choose(params, layout, bases)
    result['backup_id'] = marker['id']
    catalog = remote.wal_catalog()
    check_fetch_names(layout, remote, marker, catalog)
    identity = require_identity(module, params['age_identity_file'], encrypted_parts(marker, catalog))
    base_changed = fetch_base(module, layout, remote, marker, state, identity)
    result['wal_last'] = fetch_wal(module, layout, remote, catalog, marker, state, identity)
    if not module.check_mode and (base_changed or state['wal_downloaded']):
        Barman(module, layout).run(['rebuild-xlogdb', layout.server])
    result.update(changed=bool(base_changed or state['wal_downloaded']), downloaded_bytes=state['downloaded'],
                  wal_downloaded=state['wal_downloaded'], wal_present=state['wal_present'])
    return result
