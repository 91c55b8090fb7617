# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A physical base backup with Barman, its verification and retention (module pg_pitr_backup, docs/pitr.md).

The backup counts once it is verified: recovered to its consistency point in a scratch directory, checked by
pg_verifybackup against its manifest, started in a scratch container of the database service's image and queried.
The verdict, passed or failed, is written to ``verified/<id>.json``. Retention runs only after a passed verification
and never deletes the newest verified backup (pitr.retention_plan). The scratch directory and container are named in
a journal (``verification.json``) before they exist, so the next run removes what a killed verification left.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    Barman, Layout, PitrError, close_wal_segment, lock_held, physical_catalog, record_verification, retention_plan)
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_storage import (
    Docker, Journal, Storage, chown_tree, compose_json, relocate_recovery_conf, remove_dead_staging,
    remove_scratch_container, service_image)

# Files Barman adds or rewrites for a recovery: not part of the backup, so not in its manifest.
NOT_IN_MANIFEST = ('barman_wal', 'postgresql.auto.conf', 'recovery.signal', '.barman-recover.info', 'tablespace_map',
                   'postgresql.auto.conf.origin', 'postgresql.conf.origin')
SCRATCH_PGDATA = '/var/lib/postgresql/stackops-verify'


class BaseBackup(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.layout = Layout(self.params['pitr_dir'], self.params['server_name'])
        self.barman = Barman(module, self.layout)
        self.docker = Docker(module)
        self.journal = Journal(self.layout.root, 'verification', 'base backup')
        self.container = 'stackops-pitr-verify-%s' % self.layout.server

    def run(self):
        layout = self.layout
        if not os.path.exists(layout.server_conf):
            raise PitrError('PITR is not enabled for %s (no %s); run `stackops pitr enable` first'
                            % (layout.server, layout.server_conf))
        if self.module.check_mode:
            return dict(changed=True, msg='would take a base backup of %s with Barman into %s%s' % (
                layout.server, layout.server_home, ' and verify it' if self.params['verify'] else ''),
                cleaned_up=self.clean_leftovers())
        self.journal.lock(layout.server)
        cleaned = self.clean_leftovers()
        before = set(entry['id'] for entry in physical_catalog(layout))
        started = time.time()
        receiving = lock_held(layout.receiver_lock())
        # cron first: it (re)starts the receiver the backup's WAL arrives through.
        self.barman.run(['cron'], detach=True)
        # Barman refuses a first backup until the archive holds WAL (a non-empty WAL catalog <server>-xlog.db,
        # xlog.db in older Barman: its own test). Close the current segment and archive it; once the archive holds
        # WAL and the receiver runs, nothing needs waiting for.
        archived = [os.path.join(layout.server_home, 'wals', name) for name in ('%s-xlog.db' % layout.server, 'xlog.db')]
        if not (receiving and any(os.path.isfile(path) and os.path.getsize(path) > 0 for path in archived)):
            close_wal_segment(self.module, layout, required=True)
            self.barman.run(['archive-wal', layout.server])
        rc, out, err = self.barman.run(['backup', '--wait', '--wait-timeout', '600', layout.server], check=False)
        new = [entry for entry in physical_catalog(layout) if entry['id'] not in before]
        if rc != 0 or not new or new[0]['status'] != 'DONE':
            raise PitrError('barman backup of %s failed (rc=%s): %s; the failed set is kept as FAILED in the catalog, '
                            'see %s' % (layout.server, rc, (err.strip() or out.strip())[-1500:], layout.log))
        backup = new[0]
        durations = dict(backup=round(time.time() - started, 3))
        verification, deleted = None, []
        if self.params['verify']:
            verification = self.verify(backup)
            durations['verify'] = verification['seconds']
            if self.params['apply_retention']:
                deleted = self.apply_retention()
        backup = [entry for entry in physical_catalog(layout) if entry['id'] == backup['id']][0]
        return dict(changed=True, backup=backup, verification=verification, durations=durations,
                    retention_deleted=deleted, cleaned_up=cleaned)

    def verify(self, backup):
        params = self.params
        started = time.time()
        scratch = os.path.join(self.layout.staging, 'verify-%s' % backup['id'])
        # Named before they exist: a kill from here on leaves the next run the names to remove.
        self.journal.write(backup_id=backup['id'], scratch=scratch, container=self.container)
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            self.barman.run(['recover', '--target-immediate', '--target-action', 'promote', self.layout.server,
                             backup['id'], scratch])
            argv = [os.path.join(params['pg_bindir'], 'pg_verifybackup'), '--no-parse-wal', '--quiet',
                    '--manifest-path', os.path.join(backup['path'], 'data', 'backup_manifest')]
            for name in NOT_IN_MANIFEST:
                argv += ['--ignore', name]
            rc, out, err = self.module.run_command(argv + [scratch])
            if rc != 0:
                raise PitrError('pg_verifybackup found the base backup damaged: %s' % (err.strip() or out.strip())[-1500:])
            config = compose_json(self.module, params, ['config', '--format', 'json'])
            image = service_image(self.module, params, self.docker, config, params['compose_service'])
            owner = Storage(self.docker, config, params['compose_service'],
                            backup['pgdata'] or '/var/lib/postgresql/data').owner(image)
            relocate_recovery_conf(scratch, scratch, SCRATCH_PGDATA)
            chown_tree(scratch, *owner)
            checked = self.docker.scratch_check(self.container, image, (scratch, SCRATCH_PGDATA), SCRATCH_PGDATA,
                                                owner, params['check_user'], params['check_db'])
        except PitrError as exc:
            record_verification(self.layout, backup['id'], dict(verified=False, error=str(exc)))
            raise PitrError('base backup %s of %s failed its verification: %s; it stays in the catalog marked as '
                            'failed and no recovery starts from it' % (backup['id'], self.layout.server, exc))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            self.journal.drop()
        return record_verification(self.layout, backup['id'], dict(
            verified=True, manifest='ok', scratch=checked, seconds=round(time.time() - started, 3)))

    def apply_retention(self):
        """Barman's configuration has no retention policy, so `barman cron` deletes nothing; this is where the policy
        runs, after a verification passed, and it keeps the newest verified backup."""
        doomed = retention_plan(physical_catalog(self.layout), self.params['recovery_window_days'],
                                self.params['minimum_backups'])
        for backup_id in doomed:
            self.barman.run(['delete', self.layout.server, backup_id])
        return doomed

    def clean_leftovers(self):
        """What a verification killed with SIGKILL left: its scratch container and its scratch copy of the cluster."""
        done = []
        check = self.module.check_mode
        entry = self.journal.read()
        if entry:
            done += remove_scratch_container(self.docker, entry.get('container') or self.container, check,
                                             'of the verification of %s that was killed' % entry.get('backup_id'))
            scratch = entry.get('scratch') or ''
            # Only a directory of ours: the journal is a file, and a path elsewhere is never removed.
            if os.path.dirname(scratch) == self.layout.staging and os.path.isdir(scratch):
                done.append('remove scratch copy %s of the verification that was killed' % scratch)
                if not check:
                    shutil.rmtree(scratch)
            if not check:
                self.journal.drop()
        return done + remove_dead_staging(self.layout, check)
