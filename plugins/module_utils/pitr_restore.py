# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Point-in-time recovery of a compose PostgreSQL (module pg_pitr_restore, docs/pitr.md "Recovery").

A recovery has four phases, each a method of Recovery, timed in ``durations``:

1. ``plan``: the base backup and WAL range for the target, refused before anything is written when there is none.
2. ``wal``: every commit made before the run reaches the archive (the server closes its WAL segment and the
   receiver, which streams, already holds it; a dead server leaves the receiver's ``.partial``).
3. ``recover`` and ``scratch_check``: Barman recovers into new storage beside the live data, as archive recovery
   that ends in promotion onto a new timeline; the cluster is started in a scratch container and queried.
4. ``swap`` and ``health``: the service is stopped, the two data directories exchanged in one rename, the service
   started through its health check; undone when it does not get healthy.

Until the swap only the new storage is written. A journal (``recovery.json``) names that storage before it exists
and a lock (``recovery.lock``) lets one recovery run at a time, so the next run removes what a killed one left.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import re
import shutil
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import run_compose
from ansible_collections.stackops.runbooks.plugins.module_utils.fault import fault_point
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    Barman, Layout, PitrError, barman_conninfo, check_target_value, choose_backup, close_wal_segment, iso, load_marks,
    lsn_int, parse_ts, physical_catalog, record_swap, recovery_window, usable_backups, utc_stamp)
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_storage import (
    Docker, Journal, Storage, compose_json, drop_sync_receiver, exchange_dirs, finish_recovered, chown_tree,
    relocate_recovery_conf, remove_dead_staging, remove_scratch_container, service_image)
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_standby import (
    RECOVERY_KEYS, Standby, container_name, finish_promoted, position_in_time, primary_flush_lsn, rewrite_auto_conf,
    window_check)
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_standby import drop_record as drop_standby_record
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_standby import load_record as load_standby_record
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_standby import (
    CATCH_UP_SECONDS as STANDBY_CATCH_UP_SECONDS)
STREAMED = re.compile(r'^([0-9A-F]{24})(\.partial)?$|^[0-9A-F]{8}\.history$')


class Recovery(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.layout = Layout(self.params['pitr_dir'], self.params['server_name'])
        self.docker = Docker(module)
        self.journal = Journal(self.layout.root, 'recovery', 'recovery')
        self.scratch_name = 'stackops-pitr-check-%s' % self.layout.server
        self.durations = {}
        self.cleaned = []
        self.clock = time.time()
        self.standby_record = load_standby_record(self.layout)
        self.method_reason = None

    def lap(self, phase):
        now = time.time()
        self.durations[phase] = round(self.durations.get(phase, 0) + now - self.clock, 3)
        self.clock = now

    def run(self):
        """The module's result; raises PitrError with what failed and what to do next."""
        if not os.path.exists(self.layout.server_conf):
            raise PitrError('PITR is not set up for %s (no %s); run `stackops pitr enable` and take a base backup '
                            'first' % (self.layout.server, self.layout.server_conf))
        the_plan = self.plan()
        if self.module.check_mode:
            self.cleaned = self.clean_leftovers()
            the_plan['method'], the_plan['method_reason'] = self.standby_applies(the_plan)
            return dict(changed=False, plan=the_plan, swapped=False, cleaned_up=self.cleaned)
        self.lap('plan')
        self.journal.lock(self.layout.server)
        self.cleaned = self.clean_leftovers()
        promoted = self.via_standby(the_plan)
        if promoted is not None:
            return promoted
        # A recovery to the latest point must have every commit made before the run; a time or a restore point
        # inside what the archive holds can go on without a live server's newest WAL.
        caught_up = close_wal_segment(self.module, self.layout, the_plan['target'] == 'latest')
        self.lap('wal')
        the_plan = self.plan(caught_up)
        if the_plan['target'] == 'time' and not the_plan['inside_window']:
            raise PitrError('target time %s is outside the recoverable window %s .. %s; nothing was changed' % (
                the_plan['target_value'], the_plan['earliest_recoverable'], the_plan['latest_recoverable']))
        self.lap('plan')
        storage, scratch = self.recover(the_plan)
        if self.params['swap']:
            self.swap(storage)
        else:
            # Checked and kept for the operator (RV(recovered_volume)): no longer a leftover to clean.
            self.journal.drop()
        return dict(changed=True, plan=the_plan, recovered_volume=storage.new, scratch=scratch,
                    swapped=bool(self.params['swap']), durations=self.durations, cleaned_up=self.cleaned,
                    method='base_backup', method_reason=self.method_reason,
                    # A standby that followed the replaced primary is stale: the role's pg_pitr seeds it again.
                    standby_reseed=bool(self.params['swap'] and self.standby_record is not None))

    # --- 0. the warm standby (docs/pitr.md "Warm standby") ---------------------------------------------------------
    def standby_applies(self, the_plan):
        """('standby' or 'base_backup', why), from what is set up, before anything is asked of the standby."""
        if not self.params.get('standby', True):
            return 'base_backup', 'the warm standby is not used (stackops_pitr_standby is off)'
        if self.standby_record is None:
            return 'base_backup', 'there is no warm standby (stackops_pitr_standby: true and `stackops pitr enable` set one up)'
        if self.standby_record.get('state') != 'ready':
            return 'base_backup', 'the warm standby was not seeded completely; `stackops pitr enable` seeds it again'
        if the_plan['target'] not in ('latest', 'time'):
            return 'base_backup', 'the warm standby serves --to-latest and --to-time; this is --to-%s' % (
                'lsn' if the_plan['target'] == 'lsn' else 'restore-point')
        if not self.params['swap']:
            return 'base_backup', 'no swap was asked for: the recovery is checked beside the live data'
        info = Standby(self.docker, self.layout).inspect()
        if info is None or not info['running']:
            return 'base_backup', 'the warm standby %s is %s' % (container_name(self.layout.server),
                                                                 'missing' if info is None else info['status'])
        return 'standby', 'the warm standby %s runs' % container_name(self.layout.server)

    def via_standby(self, the_plan):
        """Promote the warm standby at the target and swap the service onto it; the module's result, or None (with
        ``method_reason``) when the base-backup path must do it: no usable standby, the target outside its delay
        window, or it does not catch up with the primary in time."""
        method, reason = self.standby_applies(the_plan)
        if method != 'standby':
            self.method_reason = reason
            return None
        standby = Standby(self.docker, self.layout)
        user = standby.user()
        try:
            ready, reason, target_lsn = self.standby_ready(standby, user, the_plan)
        except PitrError as exc:
            ready, reason = False, str(exc)
        if not ready:
            if the_plan['target'] == 'time':
                standby.psql(user, 'SELECT pg_wal_replay_resume()', check=False)
            self.method_reason = reason
            self.lap('standby')
            return None
        self.lap('standby')
        params = self.params
        config = compose_json(self.module, params, ['config', '--format', 'json'])
        record = self.standby_record
        storage = Storage(self.docker, config, params['compose_service'],
                          (the_plan['backup'] or {}).get('pgdata') or '/var/lib/postgresql/data')
        storage.new = record['storage']
        storage.new_root = storage.root_of(record['storage'])
        storage.dest = storage.data_dir(storage.new_root)
        image = service_image(self.module, params, self.docker, config, params['compose_service'])
        storage.owner(image)
        self.journal.write(phase='standby-promote', storage=storage.new, kind=storage.kind, live=storage.live,
                           service=params['compose_service'])
        try:
            checked = self.promote_standby(standby, user, the_plan, storage, target_lsn)
        except BaseException as exc:
            # Promoted or half-way there, it is no standby any more: it goes, and the base backup path recovers.
            standby.remove_container()
            standby.remove_storage()
            drop_standby_record(self.layout)
            self.journal.drop()
            if not isinstance(exc, PitrError):
                raise
            self.method_reason = 'promoting the warm standby failed (%s); it was removed' % exc
            return None
        self.lap('promote')
        # From here its storage is the recovered data of a recovery: the swap keeps it (swaps.json) like any other.
        drop_standby_record(self.layout)
        self.swap(storage)
        return dict(changed=True, plan=the_plan, recovered_volume=storage.new, scratch=checked, swapped=True,
                    durations=self.durations, cleaned_up=self.cleaned, method='standby', method_reason=reason,
                    standby_reseed=True)

    def standby_ready(self, standby, user, the_plan):
        """(ready, why, the primary's WAL position to reach or None). With the primary alive the standby must have
        received everything the primary had flushed when the run started; for a time target its replay is paused
        first and must not be past the target."""
        state = standby.state(user)
        if state is None or not state['in_recovery']:
            return False, 'the warm standby %s %s' % (standby.name, 'does not answer' if state is None else
                                                      'is not in recovery'), None
        if the_plan['target'] == 'time':
            standby.psql(user, 'SELECT pg_wal_replay_pause()')
            # 'pause requested' while it waits out its apply delay or for WAL: nothing is applied until it goes on.
            state = standby.wait(user, lambda found: found['pause'] in ('paused', 'pause requested'), 30,
                                 'pause its replay')
            ok, why = window_check(parse_ts(the_plan['target_value']), position_in_time(self.standby_record, state),
                                   state['now'])
            if not ok:
                return False, why, None
        else:
            why = 'the warm standby %s replays every WAL record the primary streamed' % standby.name
        target_lsn = primary_flush_lsn(self.layout)
        if target_lsn is None:
            return True, why + '; the primary is unreachable, so it has what streamed before', None
        deadline = time.time() + STANDBY_CATCH_UP_SECONDS
        while True:
            state = standby.state(user)
            if state and state['receive_lsn'] and lsn_int(state['receive_lsn']) >= lsn_int(target_lsn):
                return True, why + ' (received up to the primary\'s %s)' % target_lsn, target_lsn
            if time.time() > deadline:
                return False, ('the warm standby lags: it received %s of the primary\'s %s within %d s' % (
                    (state or {}).get('receive_lsn'), target_lsn, STANDBY_CATCH_UP_SECONDS)), None
            time.sleep(0.05)

    def promote_standby(self, standby, user, the_plan, storage, target_lsn):
        if the_plan['target'] == 'latest':
            # pg_promote ends the apply delay too: the startup process replays all it received, then promotes.
            standby.psql(user, 'SELECT pg_promote(true, %d)' % self.params['start_timeout'])
        else:
            # Recovery targets are read at start only: the standby restarts with the target and promotes there.
            self.docker.run(['stop', standby.name])
            rewrite_auto_conf(storage.dest, ('recovery_min_apply_delay',) + RECOVERY_KEYS, [
                ('recovery_min_apply_delay', '0'), ('recovery_target_time', the_plan['target_value']),
                ('recovery_target_action', 'promote')])
            self.docker.run(['start', standby.name])

            def promoted(found):
                if found['in_recovery'] and found['replay_lsn'] and target_lsn and found['pause'] != 'paused' \
                        and lsn_int(found['replay_lsn']) >= lsn_int(target_lsn):
                    # Everything up to the run's start is replayed and no commit after the target came: the target
                    # is the end of what there is.
                    standby.psql(user, 'SELECT pg_promote(false)', check=False)
                return not found['in_recovery']
            standby.wait(user, promoted, self.params['start_timeout'], 'reach %s and promote' % the_plan['target_value'])
        fault_point('pitr-standby-promote')
        # The receiver's slot, made now, reserves the new timeline from its first segment (as the scratch check does).
        standby.psql(user, "SELECT pg_create_physical_replication_slot(:'slot', true) WHERE NOT EXISTS "
                     "(SELECT FROM pg_replication_slots WHERE slot_name = :'slot')",
                     variables=[('slot', barman_conninfo(self.layout)[1])], check=False)
        dummy, out, dummy2 = standby.psql(user, 'SELECT (SELECT count(*) FROM pg_database), '
                                                'pg_current_wal_lsn()::text, now()::text')
        fields = out.split('\n')[-1].split('|')
        standby.remove_container()
        finish_promoted(storage.dest)
        finish_recovered(storage.dest)
        drop_sync_receiver(storage.dest)
        return dict(databases=int(fields[0]), lsn=fields[1], at=fields[2], promoted=standby.name)

    # --- 1. plan -----------------------------------------------------------------------------------------------
    def plan(self, caught_up=None):
        """The base backup and WAL range for the target; ``caught_up`` is the instant up to which a live server's WAL
        is known to be in the archive (see pitr.close_wal_segment)."""
        kind, value = self.params['target'], self.params.get('target_value')
        check_target_value(kind, value)
        window = recovery_window(self.layout)
        sets = usable_backups(window['backups'])
        if self.params.get('backup_id'):
            chosen = [entry for entry in window['backups'] if entry['id'] == self.params['backup_id']]
            if not chosen:
                raise PitrError('base backup %s is not a complete backup of %s; see `stackops pitr status`'
                                % (self.params['backup_id'], self.layout.server))
            if chosen[0].get('verification_failed'):
                raise PitrError('base backup %s failed its verification (%s); choose another one (`stackops pitr '
                                'status` lists them) or leave the choice to stackops' % (
                                    chosen[0]['id'], chosen[0].get('verification_error')))
            backup = chosen[0]
        elif kind == 'name':
            mark = load_marks(self.layout).get(value)
            backup = choose_backup(sets, 'lsn', mark['lsn']) if mark else (sets[-1] if sets else None)
        else:
            backup = choose_backup(sets, kind, value)
        if backup is None:
            raise PitrError('no complete base backup of %s ends before the target %s %s (the earliest recoverable '
                            'point is %s); nothing was changed' % (self.layout.server, kind, value or '',
                                                                   iso(window['earliest'])))
        latest = max(window['latest'] or 0, caught_up or 0) or None
        inside = True
        if kind == 'time' and window['earliest'] is not None:
            inside = window['earliest'] <= parse_ts(value) <= (latest or 0)
        return dict(target=kind, target_value=value, backup=backup, inside_window=inside,
                    earliest_recoverable=iso(window['earliest']), latest_recoverable=iso(latest),
                    wal_first=window['wal']['first_segment'], wal_last=window['wal']['last_segment'],
                    wal_partial=window['wal']['partial'])

    # --- 2. wal ------------------------------------------------------------------------------------------------
    # --- 3. recover beside and check -----------------------------------------------------------------------------
    def recover(self, the_plan):
        params = self.params
        backup = the_plan['backup']
        config = compose_json(self.module, params, ['config', '--format', 'json'])
        storage = Storage(self.docker, config, params['compose_service'], backup['pgdata'] or '/var/lib/postgresql/data')
        image = service_image(self.module, params, self.docker, config, params['compose_service'])
        owner = storage.owner(image)
        stamp = utc_stamp()
        name = storage.new_name(stamp)
        # Written before the storage exists: whatever a kill leaves from here on, the next run finds it by name.
        self.journal.write(phase='recover', storage=name, kind=storage.kind, live=storage.live,
                           service=params['compose_service'])
        try:
            dest = storage.create(name, {'stackops.pitr.server': self.layout.server, 'stackops.pitr.created': stamp})
            # The WAL was caught up in run(), before the window check.
            barman_recover(Barman(self.module, self.layout), self.layout, the_plan['target'], the_plan['target_value'],
                           backup['id'], dest, storage.pgdata, catch_up=False)
            chown_tree(storage.new_root, *owner)
            os.chmod(dest, 0o700)
            self.lap('recover')
            scratch = self.docker.scratch_check(self.scratch_name, image, (storage.new, storage.mount_target),
                                                storage.pgdata, owner, params['check_user'], params['check_db'],
                                                timeout=params['start_timeout'],
                                                slot=barman_conninfo(self.layout)[1] if params['swap'] else None)
            finish_recovered(dest)
            self.lap('scratch_check')
        except BaseException:
            storage.remove()
            self.journal.drop()
            raise
        return storage, scratch

    # --- 4. swap -------------------------------------------------------------------------------------------------
    def swap(self, storage):
        params = self.params
        service = params['compose_service']
        live_dir = storage.live_dir
        try:
            if live_dir and os.path.isdir(live_dir):
                storage.check_exchange(live_dir)
        except BaseException:
            storage.remove()
            self.journal.drop()
            raise
        self.journal.write(phase='swap', storage=storage.new, kind=storage.kind, live=storage.live, service=service)
        self.compose(['stop', service])
        exchanged = recreated = False
        try:
            if not live_dir or not os.path.isdir(live_dir):
                recreated = True
                live_dir = self.recreate_live(storage)
                storage.check_exchange(live_dir)
            exchange_dirs(storage.dest, live_dir)
            exchanged = True
            fault_point('pitr-swap')
            record_swap(self.layout, dict(at=iso(time.time()), service=service, live=storage.live,
                                          previous_data=storage.new, kind=storage.kind))
            self.lap('swap')
        except BaseException as exc:
            # Any failure after the stop (EXDEV, ENOSPC, a kill of docker, ...): the previous data goes back in place
            # and the service starts on it. Never leave the database stopped.
            back = self.undo(storage, live_dir if exchanged else None, service, start=not recreated)
            if back:
                storage.remove()
                self.journal.drop()
            raise PitrError('the swap onto the recovered data failed (%s: %s); %s' % (
                type(exc).__name__, exc, 'service %s runs on its previous data again' % service if back else
                'the previous data could not be put back; it is in %s (recorded in %s), check both before you '
                'start service %s' % (storage.new, self.journal.path, service)))
        rc, out, err = self.compose(['up', '-d', '--no-deps', '--wait', '--wait-timeout',
                                     str(params['start_timeout']), service], check=False)
        if rc != 0:
            self.compose(['stop', service], check=False)
            exchange_dirs(storage.dest, live_dir)
            record_swap(self.layout, dict(at=iso(time.time()), service=service, live=storage.live, undone=True,
                                          previous_data=storage.new, kind=storage.kind))
            self.compose(['up', '-d', '--no-deps', '--wait', service], check=False)
            self.journal.drop()
            raise PitrError('service %s did not become healthy on the recovered data (%s); the swap was undone and it '
                            'runs on its previous data again; the recovered data is in %s' % (
                                service, (err.strip() or out.strip())[-800:], storage.new))
        self.lap('health')
        self.journal.drop()
        self.set_aside_streaming()
        self.lap('swap')

    def undo(self, storage, exchanged_with, service, start=True):
        """Put the previous data back (when it was exchanged already) and start the service; True when it is back.
        Not started when its data was gone before the run: it would initialise an empty cluster there."""
        back = True
        if exchanged_with:
            try:
                exchange_dirs(storage.dest, exchanged_with)
            except OSError:
                back = False
        if back and start:
            self.compose(['up', '-d', '--no-deps', '--wait', service], check=False)
        return back

    def compose(self, args, check=True):
        rc, out, err = run_compose(self.module, self.params, args, check_rc=False)
        if check and rc != 0:
            raise PitrError('docker compose %s failed (rc=%s): %s' % (
                ' '.join(args[:2]), rc, (err.strip() or out.strip())[-800:]))
        return rc, out, err

    def recreate_live(self, storage):
        """The live storage is gone (lost disk, removed volume): let compose create it, then an empty data dir."""
        self.compose(['create', '--no-recreate', self.params['compose_service']])
        live_dir = storage.live_dir
        if not os.path.isdir(live_dir):
            os.makedirs(live_dir, 0o700)
            os.chown(live_dir, *storage.owner_ids)
        return live_dir

    def set_aside_streaming(self):
        """WAL the receiver streamed past the fork point belongs to the abandoned timeline; pg_receivewal would resume
        from it and the promoted server refuses that position. Archive what is complete, keep the rest aside."""
        barman = Barman(self.module, self.layout)
        barman.run(['receive-wal', '--stop', self.layout.server], check=False)
        barman.run(['archive-wal', self.layout.server], check=False)
        streaming = os.path.join(self.layout.server_home, 'streaming')
        leftovers = os.listdir(streaming) if os.path.isdir(streaming) else []
        if leftovers:
            aside = os.path.join(self.layout.server_home, 'streaming-before-%s' % utc_stamp())
            os.makedirs(aside, 0o700)
            for name in leftovers:
                os.rename(os.path.join(streaming, name), os.path.join(aside, name))

    # --- what a killed recovery left ---------------------------------------------------------------------------
    def clean_leftovers(self):
        """Undo what a recovery killed before its swap left (its scratch container, its new storage, Barman's staging
        copy), from the journal it wrote before creating anything. A recovery killed during the swap is never undone:
        its storage may hold the data from before, so it is recorded in swaps.json and kept for the operator."""
        done = []
        check = self.module.check_mode
        entry = self.journal.read()
        if entry and entry.get('phase') == 'standby-promote':
            # Killed while promoting: the standby is no standby any more and the live data was not touched.
            standby = Standby(self.docker, self.layout)
            standby.record = standby.record or dict(storage=entry['storage'], kind=entry.get('kind'))
            done += ['%s, left by the recovery killed while promoting it' % text
                     for text in standby.remove_container(check) + standby.remove_storage(check)]
            if not check:
                drop_standby_record(self.layout)
        elif entry and entry.get('phase') == 'recover':
            done += remove_scratch_container(self.docker, self.scratch_name, check,
                                             'of the recovery killed before its swap')
            done += self.remove_storage(entry, check)
        elif entry and entry.get('phase') == 'swap':
            done.append('kept %s: a recovery was killed during its swap, so it holds either the recovered or the '
                        'previous data; recorded in %s, check it before you drop it' % (entry['storage'],
                                                                                        self.layout.swaps))
            if not check:
                record_swap(self.layout, dict(at=iso(time.time()), service=entry.get('service'),
                                              live=entry.get('live'), previous_data=entry['storage'],
                                              kind=entry.get('kind'), interrupted=True))
        done += remove_dead_staging(self.layout, check)
        if entry and not check:
            self.journal.drop()
        return done

    def remove_storage(self, entry, check):
        name = entry['storage']
        what = 'left by the recovery killed before its swap (pid %s, started %s)' % (
            entry.get('pid'), entry.get('started'))
        if entry.get('kind') == 'volume':
            rc, out, dummy = self.docker.run(['volume', 'inspect', '--format',
                                              '{{index .Labels "stackops.pitr.server"}}', name], check=False)
            if rc != 0 or out.strip() != self.layout.server:
                return []
            if not check:
                rc, out, err = self.docker.run(['volume', 'rm', name], check=False)
                if rc != 0:
                    raise PitrError('cannot remove volume %s left by a killed recovery: %s; see which container uses '
                                    'it (docker ps -a --filter volume=%s) and remove that first' % (
                                        name, (err or out).strip(), name))
            return ['remove volume %s %s' % (name, what)]
        if os.path.isdir(name) and '.pitr-' in os.path.basename(name):
            if not check:
                shutil.rmtree(name)
            return ['remove directory %s %s' % (name, what)]
        return []


def barman_recover(barman, layout, target, target_value, backup_id, dest, pgdata, catch_up=True):
    """Recover base backup ``backup_id`` into the host directory ``dest`` so that PostgreSQL, started on it at
    ``pgdata`` inside a container, replays to the target (time, lsn, name or latest) and promotes onto a new
    timeline. With ``catch_up``, a live server's newest WAL reaches the archive first (pitr.close_wal_segment, best
    effort). Used by a recovery (Recovery.recover) and by a physical drill (module_utils/drill.py)."""
    if catch_up:
        close_wal_segment(barman.module, layout, required=False)
    backup = [entry for entry in physical_catalog(layout) if entry['id'] == backup_id]
    barman.run(recover_args(dict(target=target, target_value=target_value)) + [layout.server, backup_id, dest])
    fault_point('pitr-recover-copy')
    add_timeline_wal(layout, dest, backup[0] if backup else {})
    add_streamed_wal(layout, dest)
    relocate_recovery_conf(dest, dest, pgdata)
    drop_sync_receiver(dest)


def recover_args(the_plan):
    """`barman recover` options for the target. Every recovery is archive recovery that ends in promotion, so the
    recovered cluster starts a new timeline: the old server's later WAL can never collide with its own in the
    archive. For the latest point that means following the newest timeline to its end (Barman's `latest`)."""
    target, value = the_plan['target'], the_plan['target_value']
    option = dict(time='--target-time', lsn='--target-lsn', name='--target-name', latest='--target-tli')[target]
    return ['recover', '--target-action', 'promote', option, value if target != 'latest' else 'latest']


def timelines_to_follow(wals):
    """The newest timeline the archive knows and its ancestors (from its history file)."""
    histories = [name for name in os.listdir(wals) if re.match(r'^[0-9A-F]{8}\.history$', name)]
    if not histories:
        return set([1])
    newest = max(histories)
    with open(os.path.join(wals, newest)) as handle:
        lines = [line.split() for line in handle if line.strip() and not line.startswith('#')]
    return set([int(newest[:8], 16)] + [int(fields[0]) for fields in lines])


def add_timeline_wal(layout, dest, backup):
    """Every archived segment of the newest timeline and its ancestors from the base backup's first one on.

    Barman copies the segments it computes the recovery needs. A timeline that forked from its parent before the
    parent's own start (a recovery to a point before an earlier recovery's fork: PostgreSQL then names the newer
    timeline as the parent) defeats that computation and segments go missing. PostgreSQL picks the right file of
    each segment from the history, so giving it all of them costs only the copies."""
    wals = os.path.join(layout.server_home, 'wals')
    wal_dir = os.path.join(dest, 'barman_wal')
    if not os.path.isdir(wals) or not os.path.isdir(wal_dir) or not backup.get('begin_wal'):
        return
    follow = timelines_to_follow(wals)
    first = backup['begin_wal'][8:]
    for sub in sorted(os.listdir(wals)):
        if not re.match(r'^[0-9A-F]{16}$', sub):
            continue
        for name in sorted(os.listdir(os.path.join(wals, sub))):
            if (re.match(r'^[0-9A-F]{24}$', name) and int(name[:8], 16) in follow and name[8:] >= first
                    and not os.path.exists(os.path.join(wal_dir, name))):
                shutil.copyfile(os.path.join(wals, sub, name), os.path.join(wal_dir, name))
    for tli in follow:
        name = '%08X.history' % tli
        if os.path.exists(os.path.join(wals, name)) and not os.path.exists(os.path.join(wal_dir, name)):
            shutil.copyfile(os.path.join(wals, name), os.path.join(wal_dir, name))


def add_streamed_wal(layout, dest):
    """What the receiver holds that the archive does not yet: completed segments `barman cron` has not moved yet and
    the segment still being received (``.partial``, under its segment name). A recovery to latest needs them."""
    streaming = os.path.join(layout.server_home, 'streaming')
    wal_dir = os.path.join(dest, 'barman_wal')
    if not os.path.isdir(streaming) or not os.path.isdir(wal_dir):
        return
    for name in sorted(os.listdir(streaming)):
        match = STREAMED.match(name)
        if not match:
            continue
        target = os.path.join(wal_dir, match.group(1) or name)
        if os.path.exists(target):
            continue
        # The receiver may finish the segment (dropping .partial) and `barman cron` archive it while we copy.
        segment = match.group(1) or name
        sources = [os.path.join(streaming, name), os.path.join(streaming, segment),
                   os.path.join(layout.server_home, 'wals', segment[:16], segment)]
        for source in sources:
            try:
                shutil.copyfile(source, target)
                break
            except (IOError, OSError) as exc:
                if exc.errno != errno.ENOENT or source == sources[-1]:
                    raise
