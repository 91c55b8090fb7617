#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: s3_pitr_fetch
short_description: Download a checked physical base backup and the WAL after it from S3 into the PITR directory
version_added: 0.2.0
description:
  - The first half of C(stackops restore --to-time/--to-lsn/--to-restore-point/--to-latest --from-remote). Picks
    the base backup copy a recovery to the target needs (O(backup_id), else the newest complete verified copy that
    ends before the target, the rule M(stackops.runbooks.pg_pitr_restore) uses), and downloads it with every WAL
    file from its C(begin_wal) on into O(pitr_dir), where Barman and M(stackops.runbooks.pg_pitr_restore) find
    them as if they had never left.
  - Every object's size and sha256 are checked against the copy's marker (the WAL against the WAL catalog) before
    it is put in place; an age-encrypted object is then decrypted with O(age_identity_file) and its plaintext checked
    the same way. A base backup is downloaded into a staging directory and moved in with its
    C(backup.info) last, so a killed fetch never leaves a base backup that looks complete. WAL files get the
    modification time they had on the source host (the recoverable window is judged on it).
  - Files already in place that match are kept (no download). Then C(barman rebuild-xlogdb) makes Barman's WAL
    index match the archive.
  - Needs Barman's configuration for O(server_name) in O(pitr_dir) (C(stackops pitr enable) writes it); the
    configuration and C(pgpass) are never shipped.
author:
  - stackops maintainers (@stackops)
options:
  target:
    description: What the recovery will stop at, as for M(stackops.runbooks.pg_pitr_restore).
    type: str
    choices: [time, lsn, name, latest]
    required: true
  target_value:
    description: The time (with UTC offset), LSN or restore point name; not for V(latest).
    type: str
  backup_id:
    description: Base backup to fetch instead of the one the target implies.
    type: str
  require_verified:
    description: Refuse base backup copies that were not verified before they were copied.
    type: bool
    default: true
  age_identity_file:
    description:
      - age identity (private key) file that decrypts copies M(stackops.runbooks.s3_pitr_copy) encrypted to its
        C(age_recipients) (the role passes C(stackops_offsite_age_identity_file)).
      - Checked against the recipients of the base backup copy and the WAL catalog before anything is downloaded;
        an encrypted copy without it, or with a key of none of them, fails then. Every object's ciphertext is checked
        against the marker or WAL catalog, decrypted (age authenticates every chunk) and the plaintext checked
        before it is put in place.
    type: path
extends_documentation_fragment:
  - stackops.runbooks.pitr
  - stackops.runbooks.s3
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_pitr
notes:
  - Check mode reads the target and reports what would be downloaded; it downloads nothing.
  - A restore point name is found in the local C(marks.json); a name it does not hold starts from the oldest copy.
seealso:
  - module: stackops.runbooks.s3_pitr_copy
  - module: stackops.runbooks.pg_pitr_restore
'''

EXAMPLES = r'''
- name: Bring the base backup and WAL for a recovery to 14:01:59 back from S3
  stackops.runbooks.s3_pitr_fetch:
    pitr_dir: /var/backups/stackops-pitr
    server_name: shop
    target: time
    target_value: "2026-12-01 14:01:59+00"
    bucket: acme-db-backups
    prefix: prod/db1
    region: eu-central-1

- name: Then recover as usual
  stackops.runbooks.pg_pitr_restore:
    pitr_dir: /var/backups/stackops-pitr
    server_name: shop
    project_dir: /srv/shop
    check_user: postgres
    check_db: shop
    target: time
    target_value: "2026-12-01 14:01:59+00"
    swap: true
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
backup_id:
  description: The base backup fetched (or already in place).
  returned: success
  type: str
wal_downloaded:
  description: WAL files downloaded (in check mode, that would be).
  returned: always
  type: int
wal_present:
  description: WAL files that were already in place and matched.
  returned: always
  type: int
wal_last:
  description: Newest WAL segment now in the local archive from the target, or V(null).
  returned: always
  type: str
downloaded_bytes:
  description: Bytes downloaded.
  returned: always
  type: int
throughput_mib_per_second:
  description: Download rate including checks.
  returned: always
  type: float
duration_seconds:
  description: Time the module took.
  returned: always
  type: float
'''

import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError, sha256_file
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import MIB, OffsiteError, s3_target_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_pitr import (
    check_fetch_names, fetch_object, newest_segment, open_remote, plaintext_of, require_identity, wal_before,
    wal_sort_key)
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    Barman, Layout, PitrError, check_target_value, choose_backup, load_marks, pitr_argument_spec)


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


def download_checked(target, key, meta, dest, identity=None):
    """Download ``key`` next to ``dest`` (decrypted when it is encrypted) and move it in place only when it matches
    ``meta``."""
    return fetch_object(target, key, meta, dest, identity)


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
    shutil.rmtree(staging, ignore_errors=True)
    prefix = remote.base_prefix(backup_id)
    for rel, meta in sorted(objects.items()):
        state['downloaded'] += download_checked(remote.target, prefix + rel, meta, os.path.join(staging, rel), identity)
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
        if module.check_mode:
            state['downloaded'] += meta['size']
            continue
        state['downloaded'] += download_checked(remote.target, remote.wal_key(rel), meta, dest, identity)
        if meta.get('mtime'):
            os.utime(dest, (meta['mtime'], meta['mtime']))
    return newest_segment(wanted)


def main():
    spec = s3_target_spec()
    spec.update(pitr_argument_spec())
    spec.update(
        target=dict(type='str', choices=['time', 'lsn', 'name', 'latest'], required=True),
        target_value=dict(type='str'),
        backup_id=dict(type='str'),
        require_verified=dict(type='bool', default=True),
        age_identity_file=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    clock = time.monotonic()
    result = dict(changed=False, wal_downloaded=0, wal_present=0, wal_last=None, downloaded_bytes=0,
                  throughput_mib_per_second=0.0)
    state = dict(downloaded=0, wal_downloaded=0, wal_present=0)
    layout = Layout(params['pitr_dir'], params['server_name'])
    try:
        if not os.path.isfile(layout.server_conf):
            raise BackupError('no Barman configuration for %s in %s; run `stackops pitr enable` on this host first (it '
                              'writes the configuration and streams WAL again), then restore from remote' % (
                                  layout.server, layout.conf_dir))
        remote = open_remote(module, params, result)
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
    except (BackupError, PitrError) as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        module.fail_json(msg='fetching the PITR copy of %s failed: %s' % (params['server_name'], exc), **result)
    except (IOError, OSError) as exc:
        result['duration_seconds'] = round(time.monotonic() - clock, 3)
        module.fail_json(msg='fetching the PITR copy of %s failed: %s; check free space and permissions of %s' % (
            params['server_name'], exc, params['pitr_dir']), **result)
    elapsed = time.monotonic() - clock
    result['duration_seconds'] = round(elapsed, 3)
    if result['downloaded_bytes'] and not module.check_mode:
        result['throughput_mib_per_second'] = round(result['downloaded_bytes'] / MIB / max(elapsed, 0.001), 1)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
