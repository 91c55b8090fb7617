#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: s3_pitr_copy
short_description: Copy verified physical base backups and their WAL to S3-compatible storage, check them, prune old ones
version_added: 0.2.0
description:
  - Copies the WAL Barman archived for O(server_name) in O(pitr_dir) and verified base backups (the newest, all, or
    O(backup_id)) to one S3 target, below C(<prefix>.pitr/<server>/) (docs/offsite.md). Unverified or failed base
    backups are never copied.
  - Incremental. First Barman moves finished segments from C(streaming/) into the archive (C(barman archive-wal)).
    Then every archived WAL file that is not yet in the target's WAL catalog C(wal-catalog.json) (or is there with
    another plaintext size) goes up, its size and ETag are checked, and it is added to the catalog. WAL that was
    already uploaded and checked is skipped, and so is WAL older than what remote retention keeps (the catalog's
    C(floor)), so WAL Barman still keeps locally does not go up again. A run with nothing new uploads nothing and
    reports C(changed=false).
  - With O(age_recipients) every base backup file and WAL file is encrypted with C(age) on this host before it is
    sent (stored as C(<name>.age)); only the completion markers and the WAL catalog (ids, times, LSNs, sizes,
    checksums) stay readable. Sizes and ETags are checked on the ciphertext, as stored; the catalog and the marker
    also record the plaintext's size and sha256. A file that cannot be encrypted fails the copy; nothing is ever
    sent in plaintext in its place. WAL a target already holds in plaintext (copied before recipients were set) is
    sent again encrypted and its plaintext object deleted.
  - A base backup copy counts only once its completion marker is written. The marker is written last, after every
    object was checked (size and ETag; with O(remote_check=download) also sha256 read back) and after the WAL from
    the backup's C(begin_wal) to its C(end_wal) is in the WAL catalog.
  - With O(retention), base backup copies beyond the newest O(retention.keep_last) verified ones are deleted (the
    marker first). The newest verified copy and the WAL after it are never deleted. WAL older than the oldest kept
    base backup goes (history files stay). Copies under S3 Object Lock are kept and reported.
  - C(pgpass), Barman's configuration and C(xlog.db) never leave the host.
author:
  - stackops maintainers (@stackops)
options:
  backup_id:
    description: Copy this base backup (it must be DONE and verified). Without it, O(base_backups) decides.
    type: str
  base_backups:
    description:
      - Without O(backup_id), copy the newest verified base backup (V(latest)), every verified one not on the target
        yet (V(all)), or none (V(none), only the WAL; run it between base backups to ship WAL as it is archived).
    type: str
    choices: [latest, all, none]
    default: latest
  remote_check:
    description: How uploaded objects are checked before they count - V(etag) (sizes and server MD5s) or V(download) (also sha256 read back).
    type: str
    choices: [etag, download]
    default: etag
  max_bandwidth_mib:
    description: Upper limit of the upload rate in MiB/s; V(0) is unlimited.
    type: int
    default: 0
  age_recipients:
    description:
      - age public keys (C(age1...)) to encrypt every base backup file and WAL file to before it is sent (the role
        passes C(stackops_offsite_age_recipients)); empty sends them as they are (still over TLS).
      - M(stackops.runbooks.s3_pitr_fetch) needs the identity file of one of them (C(age_identity_file)).
    type: list
    elements: str
    default: []
  staging_dir:
    description: Where a file is encrypted before it is sent (one file at a time); default O(pitr_dir).
    type: path
  retention:
    description: Retention of the base backup copies on this target; omit to keep every copy and all WAL.
    type: dict
    suboptions:
      keep_last:
        description: Newest verified base backup copies to keep (at least 1).
        type: int
        default: 2
extends_documentation_fragment:
  - stackops.runbooks.pitr
  - stackops.runbooks.s3
  - stackops.runbooks.s3.object_lock
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_pitr
notes:
  - Check mode reads the local archive and the target and reports what would be uploaded and deleted; it changes
    nothing (not even C(archive-wal)).
seealso:
  - module: stackops.runbooks.s3_pitr_fetch
  - module: stackops.runbooks.pg_pitr_backup
  - module: stackops.runbooks.s3_backup_copy
'''

EXAMPLES = r'''
- name: Ship the newest verified base backup and all new WAL, keep two base backups off-site
  stackops.runbooks.s3_pitr_copy:
    pitr_dir: /var/backups/stackops-pitr
    server_name: shop
    bucket: acme-db-backups
    prefix: prod/db1
    region: eu-central-1
    retention: {keep_last: 2}

- name: Ship only the WAL archived since the last run (e.g. every 5 minutes from cron or AWX)
  stackops.runbooks.s3_pitr_copy:
    pitr_dir: /var/backups/stackops-pitr
    server_name: shop
    base_backups: none
    bucket: backups
    endpoint_url: https://s3.backup.internal:9000
    path_style: true
'''

RETURN = r'''
target:
  description: The target, as C(s3://bucket/prefix/.pitr/server/).
  returned: always
  type: str
target_name:
  description: O(target_name), or the bucket when none was given.
  returned: always
  type: str
copied:
  description: Base backups copied by this run (in check mode, that would be copied).
  returned: always
  type: list
  elements: str
present:
  description: Chosen base backups that already had a complete copy.
  returned: always
  type: list
  elements: str
wal_uploaded:
  description: WAL files uploaded and checked by this run (in check mode, that would be).
  returned: always
  type: int
wal_skipped:
  description: Archived WAL files not uploaded - already in the target's WAL catalog, or older than what it keeps.
  returned: always
  type: int
wal_below_retention:
  description: Of RV(wal_skipped), the WAL files older than the oldest segment remote retention keeps (not sent again).
  returned: always
  type: int
objects_uploaded:
  description:
    - Objects written by this run - WAL files, base backup files and markers (not in check mode). V(0) on a run
      with nothing new.
  returned: always
  type: int
encrypted:
  description: Whether this run encrypted what it sent (O(age_recipients) given).
  returned: always
  type: bool
wal_last:
  description: Newest WAL segment in the target's WAL catalog after this run, or V(null).
  returned: always
  type: str
uploaded_bytes:
  description: Bytes sent, resumed parts not included.
  returned: always
  type: int
retention:
  description:
    - C(kept) (id to reasons), C(deleted) (base backup ids), C(wal_deleted) (number of WAL objects), C(wal_cutoff)
      (oldest segment kept), C(locked) (copies kept because of S3 Object Lock) and C(refused) (objects the target
      refused to delete).
  returned: when O(retention) is given
  type: dict
latest_verified:
  description: Newest verified complete base backup copy on the target after this run (id, end_time), or V(null).
  returned: always
  type: dict
duration_seconds:
  description: Time the module took.
  returned: always
  type: float
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import (
    MARKER, Throttle, json_bytes, lock_from_params, lock_spec, s3_target_spec, OffsiteError)
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import AGE_SUFFIX
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_pitr import (
    Sender, base_backup_files, base_marker, local_wal_files, needed_wal, newest_segment, open_remote, stored_name,
    wal_before, wal_floor, wal_todo)
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    Barman, Layout, PitrError, parse_backup_info, physical_catalog, pitr_argument_spec)

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


def ship_wal(module, params, remote, catalog, local, sender, floor, totals):
    files = catalog['files']
    todo, below = wal_todo(files, local, sender.recipients, floor)
    totals.update(wal_skipped=len(local) - len(todo), wal_below_retention=len(below))
    if module.check_mode:
        totals['wal_uploaded'] = len(todo)
        return
    if sender.recipients:
        catalog['encryption'] = dict(method='age', recipients=sender.recipients, suffix=AGE_SUFFIX)
    replaced, pending = [], 0
    for rel in todo:
        key = remote.wal_key(rel)
        sent = sender.send(local[rel], key)
        totals['uploaded'] += sent['size'] - sent.pop('resumed_bytes')
        stored = key + (AGE_SUFFIX if sent['encrypted'] else '')
        found = remote.target.head(stored)
        if found is None or found['size'] != sent['size'] or found['etag'] != sent['etag']:
            raise OffsiteError('WAL %s on %s does not match what was sent (%s); it does not count. Run the copy again'
                               % (stored, remote.label, found))
        if params['remote_check'] == 'download':
            dummy, digest = remote.target.read_sha256(stored)
            if digest != sent['sha256']:
                raise OffsiteError('WAL %s on %s reads back with sha256 %s, sent %s' % (
                    stored, remote.label, digest, sent['sha256']))
        old = files.get(rel)
        if old is not None and stored_name(rel, old) != stored_name(rel, sent):
            replaced.append(remote.wal_key(stored_name(rel, old)))
        files[rel] = dict(size=sent['size'], etag=sent['etag'], sha256=sent['sha256'], encrypted=sent['encrypted'],
                          plaintext_size=sent['plaintext_size'], plaintext_sha256=sent['plaintext_sha256'],
                          mtime=os.path.getmtime(local[rel]))
        totals['wal_uploaded'] += 1
        pending += 1
        if pending >= SAVE_EVERY:
            remote.save_wal_catalog(catalog, sender.lock)
            pending = 0
    if pending:
        remote.save_wal_catalog(catalog, sender.lock)
    # Plaintext copied before recipients were set, now replaced by its ciphertext in the catalog.
    for key in replaced:
        totals['plaintext_refused'].extend(remote.target.delete_key(key))


def copy_base(module, params, layout, remote, backup, catalog, local_wal, sender):
    info = parse_backup_info(os.path.join(layout.server_home, 'meta', '%s-backup.info' % backup['id']))
    begin_wal, end_wal = info.get('begin_wal'), info.get('end_wal')
    missing = needed_wal(catalog['files'], local_wal, begin_wal, end_wal)
    if missing:
        raise OffsiteError('base backup %s needs WAL %s, which is not in the off-site WAL catalog (not archived '
                           'locally?); it was not counted as copied. Run `barman -c %s/barman.conf check-backup %s %s`'
                           % (backup['id'], ', '.join(missing[:5]), layout.root, layout.server, backup['id']))
    prefix = remote.base_prefix(backup['id'])
    objects, uploaded = {}, 0
    for rel, path in base_backup_files(layout, backup['id']):
        sent = sender.send(path, prefix + rel)
        uploaded += sent['size'] - sent.pop('resumed_bytes')
        objects[rel] = sent
    problems = remote.check_objects(prefix, objects)
    if params['remote_check'] == 'download' and not problems:
        for rel, meta in sorted(objects.items()):
            dummy, digest = remote.target.read_sha256(prefix + stored_name(rel, meta))
            if digest != meta['sha256']:
                problems.append('%s%s: sha256 %s, sent %s' % (prefix, stored_name(rel, meta), digest, meta['sha256']))
    if problems:
        raise OffsiteError('the copy of base backup %s on %s does not match what was sent (%s); it does not count. '
                           'Run the copy again' % (backup['id'], remote.label, '; '.join(problems[:5])))
    marker = base_marker(params['server_name'], backup, objects, begin_wal, end_wal, sender.recipients)
    remote.target.put_bytes(prefix + MARKER, json_bytes(marker), sender.lock)
    sender.objects += 1
    return uploaded


def prune(module, params, remote, catalog, lock):
    keep_last = max(int(params['retention']['keep_last'] or 1), 1)
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


def main():
    spec = s3_target_spec()
    spec.update(pitr_argument_spec())
    spec.update(lock_spec())
    spec.update(
        backup_id=dict(type='str'),
        base_backups=dict(type='str', choices=['latest', 'all', 'none'], default='latest'),
        remote_check=dict(type='str', choices=['etag', 'download'], default='etag'),
        max_bandwidth_mib=dict(type='int', default=0),
        retention=dict(type='dict', options=dict(keep_last=dict(type='int', default=2))),
        age_recipients=dict(type='list', elements='str', default=[]),
        staging_dir=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    clock = time.monotonic()
    result = dict(changed=False, copied=[], present=[], wal_uploaded=0, wal_skipped=0, wal_below_retention=0,
                  objects_uploaded=0, uploaded_bytes=0, wal_last=None, encrypted=False)
    layout = Layout(params['pitr_dir'], params['server_name'])
    try:
        if not os.path.isdir(layout.server_home):
            raise BackupError('%s holds no Barman catalog of server %s; run `stackops pitr enable` and `stackops backup '
                              '--physical` first' % (params['pitr_dir'], params['server_name']))
        remote = open_remote(module, params, result)
        lock = lock_from_params(params)
        if not module.check_mode:
            # Finished segments still in streaming/ go into the archive first, so they are shipped now.
            Barman(module, layout).run(['archive-wal', layout.server], check=False)
        catalog = remote.wal_catalog()
        bases, dummy = remote.bases()
        remote_ids = set(marker['id'] for marker in bases)
        chosen = choose_bases(params, physical_catalog(layout), remote_ids)
        sender = Sender(module, remote.target, params['age_recipients'], params['staging_dir'] or layout.root, lock,
                        Throttle(params['max_bandwidth_mib']))
        result['encrypted'] = bool(sender.recipients)
        totals = dict(uploaded=0, wal_uploaded=0, wal_skipped=0, wal_below_retention=0, plaintext_refused=[])
        local_wal = local_wal_files(os.path.join(layout.server_home, 'wals'))
        infos = [os.path.join(layout.server_home, 'meta', '%s-backup.info' % backup['id'])
                 for backup in chosen if backup['id'] not in remote_ids]
        floor = wal_floor(catalog, [parse_backup_info(path).get('begin_wal') for path in infos])
        with sender:
            ship_wal(module, params, remote, catalog, local_wal, sender, floor, totals)
            for backup in chosen:
                if backup['id'] in remote_ids:
                    result['present'].append(backup['id'])
                    continue
                result['copied'].append(backup['id'])
                if not module.check_mode:
                    totals['uploaded'] += copy_base(module, params, layout, remote, backup, catalog, local_wal, sender)
        result.update(wal_uploaded=totals['wal_uploaded'], wal_skipped=totals['wal_skipped'],
                      wal_below_retention=totals['wal_below_retention'], uploaded_bytes=totals['uploaded'],
                      objects_uploaded=sender.objects)
        if sender.recipients:
            plain = [marker['id'] for marker in bases if marker['id'] in result['present'] and not marker.get('encryption')]
            if plain:
                module.warn('base backup copies %s on %s were made in plaintext before age_recipients was set; they stay '
                            'until remote retention deletes them' % (', '.join(plain), remote.label))
            if totals['plaintext_refused']:
                module.warn('plaintext WAL copied before age_recipients was set was replaced by ciphertext, but the '
                            'target refused to delete the plaintext objects %s (Object Lock?)' % ', '.join(
                                totals['plaintext_refused'][:5]))
        if params['retention'] is not None:
            result['retention'] = prune(module, params, remote, catalog, lock)
        result['wal_last'] = newest_segment(catalog['files'])
        bases, dummy = remote.bases()
        newest = [marker for marker in bases if marker.get('verified')][:1]
        result['latest_verified'] = dict(id=newest[0]['id'], end_time=newest[0]['end_time']) if newest else None
    except (BackupError, PitrError) as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        module.fail_json(msg='off-site copy of the PITR archive of %s failed: %s' % (params['server_name'], exc),
                         **result)
    kept = result.get('retention') or {}
    catalog_written = kept.pop('catalog_written', False)
    result['changed'] = bool(result['copied'] or result['objects_uploaded'] or kept.get('deleted')
                             or kept.get('wal_deleted') or catalog_written)
    result['duration_seconds'] = round(time.monotonic() - clock, 3)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
