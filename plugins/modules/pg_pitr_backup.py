#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_pitr_backup
short_description: Take a compressed physical base backup with Barman and verify it
version_added: 0.2.0
description:
  - Runs C(barman backup --wait) (C(pg_basebackup) over the replication protocol, compressed on the server), which
    returns once the WAL the backup needs is archived.
  - Verifies the new backup before it counts. It is recovered to its consistency point into a scratch directory,
    checked with C(pg_verifybackup) against the backup's manifest, then started in a scratch container of the
    database service's image (no network) and queried. The result is recorded in C(verified/<backup_id>.json).
  - Retention (C(barman cron) with the recovery window and minimum number of backups from M(stackops.runbooks.pg_pitr))
    runs after a successful verification only, so the newest verified backup is never what gets deleted.
  - A backup that fails stays in Barman's catalog with status C(FAILED) and is never marked verified.
  - In check mode it reports the backup it would take and changes nothing.
author:
  - stackops maintainers (@stackops)
options:
  verify:
    description: Verify the new backup (manifest check and a start in a scratch container).
    type: bool
    default: true
  apply_retention:
    description: Apply Barman's retention policy after a verified backup.
    type: bool
    default: true
extends_documentation_fragment:
  - stackops.runbooks.pitr
  - stackops.runbooks.pitr.scratch_check
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_compose_db_service_pitr_scratch_check
seealso:
  - module: stackops.runbooks.pg_pitr
  - module: stackops.runbooks.pg_pitr_info
'''

EXAMPLES = r'''
- name: Physical backup of the shop database, verified
  stackops.runbooks.pg_pitr_backup:
    pitr_dir: /srv/backups/shop-pitr
    server_name: shop
    project_dir: /srv/shop
    compose_service: db
    check_user: app
    check_db: shop
  register: base
'''

RETURN = r'''
backup:
  description: The new base backup as the catalog lists it (id, begin/end time and LSN, size, verified).
  returned: success, not in check mode
  type: dict
verification:
  description: What the verification saw (manifest check output, databases seen by the scratch query, duration).
  returned: when verified
  type: dict
durations:
  description: Seconds spent in the backup and in the verification.
  returned: success, not in check mode
  type: dict
'''

import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    Barman, Docker, Layout, PitrError, compose_json, data_mount, physical_catalog, pitr_argument_spec,
    scratch_check_argument_spec,
    relocate_recovery_conf, write_if_changed, chown_tree, iso, lock_held)


def verify(module, layout, barman, backup):
    params = module.params
    started = time.time()
    scratch = os.path.join(layout.staging, 'verify-%s' % backup['id'])
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        barman.run(['recover', '--target-immediate', '--target-action', 'promote', layout.server, backup['id'],
                    scratch])
        manifest = os.path.join(backup['path'], 'data', 'backup_manifest')
        # The files Barman adds or rewrites for recovery are not part of the backup; everything else is checked.
        argv = [os.path.join(params['pg_bindir'], 'pg_verifybackup'), '--no-parse-wal', '--quiet',
                '--manifest-path', manifest, '--ignore', 'barman_wal', '--ignore', 'postgresql.auto.conf',
                '--ignore', 'recovery.signal', '--ignore', '.barman-recover.info', '--ignore', 'tablespace_map',
                '--ignore', 'postgresql.auto.conf.origin', '--ignore', 'postgresql.conf.origin', scratch]
        rc, out, err = module.run_command(argv)
        if rc != 0:
            raise PitrError('pg_verifybackup found the base backup %s damaged: %s' % (
                backup['id'], (err.strip() or out.strip())[-1500:]))
        docker = Docker(module)
        config = compose_json(module, params, ['config', '--format', 'json'])
        dummy, image = data_mount(config, params['compose_service'], backup['pgdata'] or '/var/lib/postgresql/data')
        uid, gid = docker.image_ids(image)
        target = '/var/lib/postgresql/stackops-verify'
        relocate_recovery_conf(scratch, scratch, target)
        chown_tree(scratch, uid, gid)
        checked = docker.scratch_check('stackops-pitr-verify-%s' % layout.server, image, (scratch, target), target,
                                       uid, gid, params['check_user'], params['check_db'])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record = dict(verified=True, verified_at=iso(time.time()), backup_id=backup['id'], manifest='ok',
                  scratch=checked, seconds=round(time.time() - started, 3))
    write_if_changed(os.path.join(layout.verified, '%s.json' % backup['id']), json.dumps(record, indent=2) + '\n',
                     mode=0o644)
    return record


def main():
    spec = dict(
        verify=dict(type='bool', default=True),
        apply_retention=dict(type='bool', default=True),
    )
    spec.update(scratch_check_argument_spec())
    spec.update(compose_argument_spec())
    spec.update(pitr_argument_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    layout = Layout(module.params['pitr_dir'], module.params['server_name'])
    if not os.path.exists(layout.server_conf):
        module.fail_json(msg='PITR is not enabled for %s (no %s); run `stackops pitr enable` first'
                             % (layout.server, layout.server_conf))
    if module.check_mode:
        module.exit_json(changed=True, msg='would take a base backup of %s with Barman into %s%s' % (
            layout.server, layout.server_home, ' and verify it' if module.params['verify'] else ''))
    barman = Barman(module, layout)
    try:
        before = set(entry['id'] for entry in physical_catalog(layout))
        started = time.time()
        receiving = lock_held(layout.receiver_lock())
        # cron first: it (re)starts the receiver the backup's WAL arrives through.
        barman.run(['cron'], detach=True)
        # Barman refuses a first backup until the archive holds WAL: close the current segment and wait for it.
        # Once the archive holds WAL (a non-empty WAL catalog <server>-xlog.db, xlog.db in older Barman: its own test)
        # and the receiver was already running, the wait buys nothing: on an idle server it lasts until the next WAL
        # record, up to 15 s.
        archived = [os.path.join(layout.server_home, 'wals', name) for name in ('%s-xlog.db' % layout.server, 'xlog.db')]
        if not (receiving and any(os.path.isfile(path) and os.path.getsize(path) > 0 for path in archived)):
            barman.run(['switch-wal', '--force', '--archive', '--archive-timeout', '60', layout.server])
        rc, out, err = barman.run(['backup', '--wait', '--wait-timeout', '600', layout.server], check=False)
        new = [entry for entry in physical_catalog(layout) if entry['id'] not in before]
        if rc != 0 or not new or new[0]['status'] != 'DONE':
            module.fail_json(msg='barman backup of %s failed (rc=%s): %s; the failed set is kept as FAILED in the '
                                 'catalog, see %s' % (layout.server, rc, (err.strip() or out.strip())[-1500:],
                                                      layout.log),
                             backup=new[0] if new else None)
        backup = new[0]
        backup_seconds = time.time() - started
        verification = None
        if module.params['verify']:
            verification = verify(module, layout, barman, backup)
            if module.params['apply_retention']:
                barman.run(['cron'], detach=True)
        backup = [entry for entry in physical_catalog(layout) if entry['id'] == backup['id']][0]
    except PitrError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, backup=backup, verification=verification,
                     durations=dict(backup=round(backup_seconds, 3),
                                    verify=verification and verification['seconds']))


if __name__ == '__main__':
    main()
