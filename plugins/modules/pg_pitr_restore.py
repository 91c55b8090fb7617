#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_pitr_restore
short_description: Recover the compose PostgreSQL to a point in time beside the live data, check it, then swap
version_added: 0.2.0
description:
  - Picks the newest complete base backup that ends before the target, and runs C(barman recover) with the target
    into new storage beside the live data (a new local docker volume, or a sibling directory of a bind mount).
  - Starts the recovered cluster in a scratch container of the service's image (no network), waits until recovery
    reached the target and promoted, queries it and stops it cleanly.
  - With O(swap=true) it then stops the database service, exchanges the live data directory with the recovered one
    in a single C(renameat2(RENAME_EXCHANGE)) call, and starts the service again. The data from before stays in the
    new volume (recorded in C(swaps.json)) until the operator drops it. If the service does not come up on the
    recovered data, the exchange is undone and the service started on its old data.
  - Everything before the swap only writes the new storage, so a failed or killed recovery leaves the running
    database as it was; a failed recovery removes the new storage again.
  - One recovery of a server runs at a time (a lock in O(pitr_dir)). Each run first undoes what a recovery killed
    before its swap left behind, found through the journal C(recovery.json) that is written before the new storage
    is created (RV(cleaned_up)).
  - In check mode it reports the base backup and WAL range it would use and whether the target is inside the
    recoverable window, and changes nothing.
author:
  - stackops maintainers (@stackops)
options:
  target:
    description: V(time), V(lsn), V(name) (a restore point) or V(latest) (all WAL there is).
    type: str
    choices: [time, lsn, name, latest]
    required: true
  target_value:
    description: The time (ISO 8601 with an offset), the LSN (C(0/5A0003B8)) or the restore point's name.
    type: str
  backup_id:
    description: Base backup to start from; by default the newest complete one that ends before the target.
    type: str
  swap:
    description: Swap the database service onto the recovered data after the scratch check (destructive consent).
    type: bool
    default: false
  start_timeout:
    description: Seconds to wait for the scratch cluster and for the service after the swap.
    type: int
    default: 600
extends_documentation_fragment:
  - stackops.runbooks.pitr
  - stackops.runbooks.pitr.scratch_check
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_compose_db_service_pitr_scratch_check
seealso:
  - module: stackops.runbooks.pg_pitr_backup
  - module: stackops.runbooks.pg_restore_point
'''

EXAMPLES = r'''
- name: Where would a recovery to 14:01:59 start, and is it inside the window?
  stackops.runbooks.pg_pitr_restore:
    pitr_dir: /srv/backups/shop-pitr
    server_name: shop
    target: time
    target_value: '2026-12-01 14:01:59+00'
    project_dir: /srv/shop
    compose_service: db
    check_user: app
    check_db: shop
  check_mode: true

- name: Undo the bad DELETE of 14:02
  stackops.runbooks.pg_pitr_restore:
    pitr_dir: /srv/backups/shop-pitr
    server_name: shop
    target: time
    target_value: '2026-12-01 14:01:59+00'
    swap: true
    project_dir: /srv/shop
    compose_service: db
    check_user: app
    check_db: shop
'''

RETURN = r'''
plan:
  description: Base backup, WAL range, recoverable window and whether the target lies inside it.
  returned: always
  type: dict
recovered_volume:
  description: Storage the recovery was written to; after a swap it holds the data from before the recovery.
  returned: success, not in check mode
  type: str
scratch:
  description: What the scratch check saw (databases, LSN, time).
  returned: success, not in check mode
  type: dict
swapped:
  description: Whether the service now runs on the recovered data.
  returned: always
  type: bool
durations:
  description: Seconds spent recovering, checking and swapping.
  returned: success, not in check mode
  type: dict
cleaned_up:
  description: What a recovery killed before its swap had left and this run removed (its scratch container, its new
    storage, Barman's staging copy), or, for one killed during its swap, the storage kept and recorded in
    C(swaps.json); in check mode what would be done.
  returned: always
  type: list
  elements: str
'''

import errno
import fcntl
import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_argument_spec, run_compose
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    Barman, Docker, Layout, PitrError, barman_recover, check_target_value, choose_backup, chown_tree, compose_json,
    data_mount, exchange_dirs, iso, load_marks, parse_ts, pitr_argument_spec, record_swap, recovery_window,
    remove_dead_staging, scratch_check_argument_spec, strip_recovery_conf, utc_stamp, write_if_changed)


def plan(module, layout):
    params = module.params
    kind, value = params['target'], params.get('target_value')
    check_target_value(kind, value)
    window = recovery_window(layout)
    sets = window['backups']
    if params.get('backup_id'):
        chosen = [entry for entry in sets if entry['id'] == params['backup_id']]
        if not chosen:
            raise PitrError('base backup %s is not a complete backup of %s; see `stackops pitr status`'
                            % (params['backup_id'], layout.server))
        backup = chosen[0]
    elif kind == 'name':
        mark = load_marks(layout).get(value)
        backup = choose_backup(sets, 'lsn', mark['lsn']) if mark else (sets[-1] if sets else None)
    else:
        backup = choose_backup(sets, kind, value)
    inside = None
    if kind == 'time' and window['earliest'] is not None:
        target = parse_ts(value)
        inside = window['earliest'] <= target <= (window['latest'] or 0)
    elif backup is not None:
        inside = True
    return dict(target=kind, target_value=value, backup=backup, inside_window=bool(inside and backup),
                earliest_recoverable=iso(window['earliest']), latest_recoverable=iso(window['latest']),
                wal_first=window['wal']['first_segment'], wal_last=window['wal']['last_segment'],
                wal_partial=window['wal']['partial'])


# --- one recovery at a time, and what a killed one left ------------------------------------------------------------

def journal_path(layout):
    return os.path.join(layout.root, 'recovery.json')


def lock_recovery(layout):
    """Held for the whole run; the kernel drops it with the process, so a kill -9 never leaves it stuck."""
    path = os.path.join(layout.root, 'recovery.lock')
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (IOError, OSError) as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise PitrError('another recovery of %s is running (it holds %s); wait for it to finish' % (
                layout.server, path))
        raise
    return fd


def write_journal(layout, entry):
    write_if_changed(journal_path(layout), json.dumps(entry, indent=2, sort_keys=True) + '\n', mode=0o600)


def drop_journal(layout):
    if os.path.exists(journal_path(layout)):
        os.unlink(journal_path(layout))


def clean_leftovers(module, layout, docker):
    """Undo what a recovery killed before its swap left (its scratch container, its new storage, Barman's staging
    copy), from the journal it wrote before creating anything. A recovery killed during the swap is never undone:
    its storage may hold the data from before, so it is recorded in swaps.json and kept for the operator."""
    done = []
    try:
        with open(journal_path(layout)) as handle:
            entry = json.load(handle)
    except (IOError, OSError, ValueError):
        entry = None
    check = module.check_mode
    if entry and entry.get('phase') == 'recover':
        scratch = 'stackops-pitr-check-%s' % layout.server
        if docker.run(['inspect', '--format', '{{.Id}}', scratch], check=False)[0] == 0:
            done.append('remove scratch container %s of the recovery killed before its swap' % scratch)
            if not check:
                docker.run(['rm', '-f', scratch])
        name = entry['storage']
        if entry.get('kind') == 'volume':
            rc, out, dummy = docker.run(['volume', 'inspect', '--format',
                                         '{{index .Labels "stackops.pitr.server"}}', name], check=False)
            if rc == 0 and out.strip() == layout.server:
                done.append('remove volume %s left by the recovery killed before its swap (pid %s, started %s)'
                            % (name, entry.get('pid'), entry.get('started')))
                if not check:
                    rc, out, err = docker.run(['volume', 'rm', name], check=False)
                    if rc != 0:
                        raise PitrError('cannot remove volume %s left by a killed recovery: %s; see which container '
                                        'uses it (docker ps -a --filter volume=%s) and remove that first' % (
                                            name, (err or out).strip(), name))
        elif os.path.isdir(name) and '.pitr-' in os.path.basename(name):
            done.append('remove directory %s left by the recovery killed before its swap (pid %s, started %s)'
                        % (name, entry.get('pid'), entry.get('started')))
            if not check:
                shutil.rmtree(name)
    elif entry and entry.get('phase') == 'swap':
        done.append('kept %s: a recovery was killed during its swap, so it holds either the recovered or the previous '
                    'data; recorded in %s, check it before you drop it' % (entry['storage'], layout.swaps))
        if not check:
            record_swap(layout, dict(at=iso(time.time()), service=entry.get('service'), live=entry.get('live'),
                                     previous_data=entry['storage'], kind=entry.get('kind'), interrupted=True))
    done.extend(remove_dead_staging(layout, check))
    if entry and not check:
        drop_journal(layout)
    return done


def recover(module, layout, the_plan, docker, barman):
    params = module.params
    backup = the_plan['backup']
    service = params['compose_service']
    config = compose_json(module, params, ['config', '--format', 'json'])
    pgdata = backup['pgdata'] or '/var/lib/postgresql/data'
    (kind, source, target), image = data_mount(config, service, pgdata)
    subpath = os.path.relpath(pgdata, target) if pgdata != target else ''
    stamp = utc_stamp()
    new_name = ('%s-pitr-%s' % (source, stamp.lower()) if kind == 'volume'
                else '%s.pitr-%s' % (source.rstrip('/'), stamp.lower()))
    # Written before the storage exists: whatever a kill leaves from here on, the next run finds it by name.
    write_journal(layout, dict(phase='recover', storage=new_name, kind=kind, live=source, service=service,
                               pid=os.getpid(), started=iso(time.time())))
    if kind == 'volume':
        new_root = docker.volume_create(new_name, {'stackops.pitr.server': layout.server,
                                                   'stackops.pitr.created': stamp})
        live_root = docker.volume_mountpoint(source)
    else:
        os.makedirs(new_name, 0o700)
        new_root, live_root = new_name, (source if os.path.isdir(source) else None)
    dest = os.path.join(new_root, subpath) if subpath else new_root
    storage = dict(kind=kind, live=source, new=new_name, mount_target=target, pgdata=pgdata, image=image,
                   live_dir=os.path.join(live_root, subpath) if (live_root and subpath) else live_root, dest=dest)
    try:
        started = time.time()
        barman_recover(barman, layout, the_plan['target'], the_plan['target_value'], backup['id'], dest, pgdata)
        if storage['live_dir'] and os.path.isdir(storage['live_dir']):
            stat = os.stat(storage['live_dir'])
            uid, gid = stat.st_uid, stat.st_gid
        else:
            uid, gid = docker.image_ids(image)
        chown_tree(new_root, uid, gid)
        os.chmod(dest, 0o700)
        recovered = time.time()
        mount_source = new_name
        scratch = docker.scratch_check('stackops-pitr-check-%s' % layout.server, image, (mount_source, target),
                                       pgdata, uid, gid, params['check_user'], params['check_db'],
                                       timeout=params['start_timeout'])
        strip_recovery_conf(dest)
        durations = dict(recover=round(recovered - started, 3), check=round(time.time() - recovered, 3))
    except BaseException:
        if kind == 'volume':
            docker.run(['volume', 'rm', '-f', new_name], check=False)
        else:
            shutil.rmtree(new_name, ignore_errors=True)
        drop_journal(layout)
        raise
    return storage, scratch, durations, (uid, gid)


def swap(module, layout, storage, owner):
    params = module.params
    service = params['compose_service']
    started = time.time()
    write_journal(layout, dict(phase='swap', storage=storage['new'], kind=storage['kind'], live=storage['live'],
                               service=service, pid=os.getpid(), started=iso(started)))
    run_compose(module, params, ['stop', service])
    if storage['live_dir'] is None or not os.path.isdir(storage['live_dir']):
        # The live storage is gone (lost disk, removed volume): let compose create it, then fill it.
        run_compose(module, params, ['create', '--no-recreate', service])
        live_root = Docker(module).volume_mountpoint(storage['live']) if storage['kind'] == 'volume' else storage['live']
        subpath = os.path.relpath(storage['pgdata'], storage['mount_target'])
        storage['live_dir'] = live_root if subpath == '.' else os.path.join(live_root, subpath)
        if not os.path.isdir(storage['live_dir']):
            os.makedirs(storage['live_dir'], 0o700)
            os.chown(storage['live_dir'], owner[0], owner[1])
    exchange_dirs(storage['dest'], storage['live_dir'])
    record_swap(layout, dict(at=iso(time.time()), service=service, live=storage['live'],
                             previous_data=storage['new'], kind=storage['kind']))
    rc, out, err = run_compose(module, params, ['up', '-d', '--no-deps', '--wait', '--wait-timeout',
                                                str(params['start_timeout']), service], check_rc=False)
    if rc != 0:
        run_compose(module, params, ['stop', service], check_rc=False)
        exchange_dirs(storage['dest'], storage['live_dir'])
        record_swap(layout, dict(at=iso(time.time()), service=service, live=storage['live'], undone=True,
                                 previous_data=storage['new'], kind=storage['kind']))
        run_compose(module, params, ['up', '-d', '--no-deps', '--wait', service], check_rc=False)
        drop_journal(layout)
        raise PitrError('service %s did not become healthy on the recovered data (%s); the swap was undone and it '
                        'runs on its previous data again; the recovered data is in %s' % (
                            service, (err.strip() or out.strip())[-800:], storage['new']))
    drop_journal(layout)
    set_aside_streaming(module, layout)
    return round(time.time() - started, 3)


def set_aside_streaming(module, layout):
    """WAL the receiver streamed past the fork point belongs to the abandoned timeline; pg_receivewal would resume
    from it and the promoted server refuses that position. Archive what is complete, keep the rest aside."""
    Barman(module, layout).run(['receive-wal', '--stop', layout.server], check=False)
    Barman(module, layout).run(['archive-wal', layout.server], check=False)
    streaming = os.path.join(layout.server_home, 'streaming')
    leftovers = os.listdir(streaming) if os.path.isdir(streaming) else []
    if leftovers:
        aside = os.path.join(layout.server_home, 'streaming-before-%s' % utc_stamp())
        os.makedirs(aside, 0o700)
        for name in leftovers:
            os.rename(os.path.join(streaming, name), os.path.join(aside, name))


def main():
    spec = dict(
        target=dict(type='str', choices=['time', 'lsn', 'name', 'latest'], required=True),
        target_value=dict(type='str'),
        backup_id=dict(type='str'),
        swap=dict(type='bool', default=False),
        start_timeout=dict(type='int', default=600),
    )
    spec.update(scratch_check_argument_spec())
    spec.update(compose_argument_spec())
    spec.update(pitr_argument_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    layout = Layout(module.params['pitr_dir'], module.params['server_name'])
    if not os.path.exists(layout.server_conf):
        module.fail_json(msg='PITR is not set up for %s (no %s); run `stackops pitr enable` and take a base backup '
                             'first' % (layout.server, layout.server_conf))
    cleaned = []
    try:
        docker = Docker(module)
        if not module.check_mode:
            lock_recovery(layout)
        cleaned = clean_leftovers(module, layout, docker)
        the_plan = plan(module, layout)
        if the_plan['backup'] is None:
            raise PitrError('no complete base backup of %s ends before the target %s %s; earliest recoverable point '
                            'is %s' % (layout.server, the_plan['target'], the_plan['target_value'] or '',
                                       the_plan['earliest_recoverable']))
        if module.check_mode:
            module.exit_json(changed=False, plan=the_plan, swapped=False, cleaned_up=cleaned)
        if the_plan['target'] == 'time' and not the_plan['inside_window']:
            raise PitrError('target time %s is outside the recoverable window %s .. %s' % (
                the_plan['target_value'], the_plan['earliest_recoverable'], the_plan['latest_recoverable']))
        barman = Barman(module, layout)
        storage, scratch, durations, owner = recover(module, layout, the_plan, docker, barman)
        swapped = False
        if module.params['swap']:
            durations['swap'] = swap(module, layout, storage, owner)
            swapped = True
        else:
            # Checked and kept for the operator (RV(recovered_volume)): no longer a leftover to clean.
            drop_journal(layout)
    except PitrError as exc:
        module.fail_json(msg=str(exc), cleaned_up=cleaned)
    module.exit_json(changed=True, plan=the_plan, recovered_volume=storage['new'], scratch=scratch, swapped=swapped,
                     durations=durations, cleaned_up=cleaned)


if __name__ == '__main__':
    main()
