#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_pitr
short_description: Turn continuous WAL archiving with Barman (streaming mode) on or off for a compose PostgreSQL
version_added: 0.2.0
description:
  - With O(state=enabled) it makes the server ready for Barman's streaming mode and starts the WAL receiver,
    each step only when needed, so a second run changes nothing.
  - The steps are C(wal_level), C(max_wal_senders) and C(max_replication_slots) (C(ALTER SYSTEM); a value that only
    takes effect after a restart is reported in RV(restart_required) and the module never restarts the server), a
    replication role whose password is generated into a libpq passfile of mode 0600 and never returned, C(pg_hba)
    rules for the receiver (the file named by C(SHOW hba_file) is edited inside O(compose_service), then
    C(pg_reload_conf())), a physical replication slot that reserves WAL at once, Barman's configuration, and the
    receiver (C(barman cron) started in its own session, optionally supervised by a cron entry).
  - With O(state=absent) it stops the receiver, drops the slot so WAL cannot pile up, removes the rules, the role,
    the passfile and Barman's server configuration, and resets the settings it had changed. Base backups and WAL
    already archived are kept.
  - In check mode it returns every change it would make in RV(changes) and makes none.
author:
  - stackops maintainers (@stackops)
options:
  state:
    description: V(enabled) sets everything up; V(absent) undoes it.
    type: str
    choices: [enabled, absent]
    default: enabled
  role:
    description: Replication role Barman connects as.
    type: str
    default: stackops_pitr
  slot:
    description: Physical replication slot the receiver streams from.
    type: str
    default: stackops_pitr
  dbname:
    description: Database Barman's normal connection uses; the function grants are made in it. Defaults to O(login_db).
    type: str
  hba_address:
    description: Address field of the C(pg_hba) rules for the role. V(samenet) matches the compose network the
      server's container sits on, which is where connections from the host arrive.
    type: str
    default: samenet
  recovery_window_days:
    description: Barman retention policy, C(RECOVERY WINDOW OF n DAYS).
    type: int
    default: 7
  minimum_backups:
    description: Barman C(minimum_redundancy), the number of base backups retention never goes below.
    type: int
    default: 1
  compression:
    description: Server-side compression of base backups (C(pg_basebackup --compress=server-...)).
    type: str
    choices: [zstd, gzip, lz4]
    default: zstd
  start_receiver:
    description: Start the WAL receiver when it is not running.
    type: bool
    default: true
  compose_service:
    description: Compose service that runs PostgreSQL (C(stackops_db_service)); the C(pg_hba) file is edited inside it.
    type: str
    required: true
  cron_file:
    description: When set, a cron entry here runs C(barman cron) every minute, which restarts the receiver after a
      crash and moves streamed WAL into the archive.
    type: path
  synchronous:
    description:
      - Synchronous WAL receiving. V(true) sets C(synchronous_standby_names) to the receiver's application name
        (C(barman_receive_wal)) and restarts the receiver, which Barman then runs as C(pg_receivewal --synchronous).
        A commit then returns only once the receiver has flushed its WAL, so a lost database loses no committed
        transaction.
      - While the receiver is down every commit waits for it (reads go on). V(false) resets the setting if stackops
        had set it; O(state=absent) always clears it before it stops the receiver.
      - Refused when C(synchronous_standby_names) already names other standbys.
    type: bool
    default: false
extends_documentation_fragment:
  - stackops.runbooks.pitr
  - stackops.runbooks.postgres
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_compose_db_service_pitr_postgresql
notes:
  - O(login_user) must be a superuser (it creates the role, edits C(pg_hba) through C(pg_read_file) and the container,
    and changes settings).
  - The C(pg_hba) file is edited inside O(compose_service) with C(docker compose exec).
seealso:
  - module: stackops.runbooks.pg_pitr_info
  - module: stackops.runbooks.pg_pitr_backup
  - module: stackops.runbooks.pg_pitr_restore
'''

EXAMPLES = r'''
- name: Turn PITR on (second run changes nothing)
  stackops.runbooks.pg_pitr:
    pitr_dir: /srv/backups/shop-pitr
    server_name: shop
    login_host: 127.0.0.1
    login_port: 5432
    login_user: app
    login_password_file: /srv/shop/secrets/db_password
    login_db: shop
    project_dir: /srv/shop
    compose_service: db
  register: pitr

- name: Turn it off again and drop the slot
  stackops.runbooks.pg_pitr:
    state: absent
    pitr_dir: /srv/backups/shop-pitr
    server_name: shop
    login_user: app
    login_password_file: /srv/shop/secrets/db_password
    project_dir: /srv/shop
    compose_service: db
'''

RETURN = r'''
changes:
  description: What was changed (in check mode, what would be), one sentence each.
  returned: always
  type: list
  elements: str
restart_required:
  description: Settings whose new value only takes effect after a PostgreSQL restart.
  returned: always
  type: list
  elements: str
receiver_alive:
  description: Whether the WAL receiver holds its lock and streams from the slot at the end of the run.
  returned: always
  type: bool
hba_file:
  description: The C(pg_hba) file inside the container.
  returned: always
  type: str
slot:
  description: The replication slot.
  returned: always
  type: str
'''

import json
import os
import secrets
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_argument_spec, compose_command
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect, describe_target, pg_connection_spec, prepare, psycopg, sql
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    HBA_MARKER, SYNC_NAME, Barman, Layout, PitrError, archive_disk, barman_global_conf, barman_server_conf, lock_held,
    passfile_line, pitr_argument_spec, read_passfile_password, receiver_error, receiver_problems, server_name_ok,
    write_if_changed)

WANTED = (('wal_level', None), ('max_wal_senders', 10), ('max_replication_slots', 10))
GRANT_FUNCTIONS = ('pg_backup_start(text, boolean)', 'pg_backup_stop(boolean)', 'pg_switch_wal()',
                   'pg_create_restore_point(text)')
GRANT_ROLES = ('pg_read_all_settings', 'pg_read_all_stats', 'pg_checkpoint')


class Pitr(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check = module.check_mode
        self.layout = Layout(self.params['pitr_dir'], self.params['server_name'])
        self.changes = []
        self.restart_required = []
        self.role = self.params['role']
        self.slot = self.params['slot']
        self.dbname = self.params['dbname'] or self.params['login_db']
        self.conn = connect(self.params)
        self.hba_file = self.scalar('SHOW hba_file')

    def change(self, text):
        self.changes.append(text)

    def scalar(self, query, args=None, conn=None):
        row = (conn or self.conn).execute(query, args).fetchone()
        return row[0] if row else None

    def act(self, text, statement, args=None, conn=None):
        self.change(text)
        if not self.check:
            (conn or self.conn).execute(statement, args)

    # -- settings
    def settings(self):
        state = self.load_state()
        for name, value in WANTED:
            live = self.scalar('SELECT setting FROM pg_settings WHERE name = %s', (name,))
            configured = self.scalar(
                "SELECT setting FROM pg_file_settings WHERE name = %s AND applied IS NOT NULL "
                "ORDER BY seqno DESC LIMIT 1", (name,))
            if name == 'wal_level':
                ok_live = live in ('replica', 'logical')
                ok_conf = ok_live if configured is None else configured in ('replica', 'logical')
                target = 'replica'
            else:
                ok_live = int(live) >= 2
                ok_conf = ok_live if configured is None else int(configured) >= 2
                target = str(value)
            if not ok_conf:
                self.act('set %s = %s (ALTER SYSTEM)' % (name, target),
                         sql.SQL('ALTER SYSTEM SET {} = {}').format(sql.Identifier(name), sql.Literal(target)))
                state.setdefault('settings', [])
                if name not in state['settings']:
                    state['settings'].append(name)
                ok_conf = True
            if not ok_live:
                self.restart_required.append(name)
        if self.changes and not self.check:
            self.conn.execute('SELECT pg_reload_conf()')
        self.save_state(state)

    def load_state(self):
        try:
            with open(self.layout.state) as handle:
                return json.load(handle)
        except (IOError, OSError, ValueError):
            return {}

    def save_state(self, state):
        if not self.check:
            write_if_changed(self.layout.state, json.dumps(state, indent=2, sort_keys=True) + '\n', mode=0o600)

    # -- pg_hba, edited inside the container: the file lives in the container's filesystem or volume
    def read_hba(self):
        return self.scalar('SELECT pg_read_file(%s)', (self.hba_file,))

    def write_hba(self, text):
        script = ('set -e; tmp="$1.stackops-tmp"; cp -p "$1" "$tmp"; cat > "$tmp"; mv "$tmp" "$1"')
        argv = compose_command(self.module, self.params, ['exec', '-T', self.params['compose_service'],
                                                          'sh', '-c', script, 'sh', self.hba_file])
        rc, out, err = self.module.run_command(argv, data=text, binary_data=True)
        if rc != 0:
            raise PitrError('cannot write %s inside compose service %s: %s; check that the service runs and its '
                            'default user may write the file' % (
                                self.hba_file, self.params['compose_service'], err.strip() or out.strip()))

    def reload_hba(self, previous):
        self.conn.execute('SELECT pg_reload_conf()')
        time.sleep(0.3)
        errors = self.conn.execute(
            'SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL').fetchall()
        if errors:
            self.write_hba(previous)
            self.conn.execute('SELECT pg_reload_conf()')
            raise PitrError('PostgreSQL rejected %s after the edit (%s); the previous file was put back' % (
                self.hba_file, '; '.join('line %s: %s' % row for row in errors)))

    def hba_lines(self):
        address = self.params['hba_address']
        return ['host replication %s %s scram-sha-256 %s' % (self.role, address, HBA_MARKER),
                'host %s %s %s scram-sha-256 %s' % (self.dbname, self.role, address, HBA_MARKER)]

    def ensure_hba(self, present):
        current = self.read_hba()
        lines = current.splitlines(True)
        ours = [line.rstrip('\n') for line in lines if HBA_MARKER in line]
        others = [line for line in lines if HBA_MARKER not in line]
        wanted = self.hba_lines() if present else []
        if ours == wanted:
            return
        if present:
            # First match wins: our rules go before the first rule, so no earlier reject line hides them.
            index = next((i for i, line in enumerate(others) if line.strip() and not line.lstrip().startswith('#')),
                         len(others))
            new_lines = others[:index] + [line + '\n' for line in wanted] + others[index:]
            self.change('add the replication rules for %s to %s' % (self.role, self.hba_file))
        else:
            new_lines = others
            self.change('remove the stackops-pitr rules from %s' % self.hba_file)
        if not self.check:
            self.write_hba(''.join(new_lines))
            self.reload_hba(current)

    # -- role and its password
    def ensure_role(self):
        exists = self.scalar('SELECT rolreplication AND rolcanlogin FROM pg_roles WHERE rolname = %s', (self.role,))
        password = read_passfile_password(self.layout.passfile, self.role)
        if exists is None:
            password = secrets.token_urlsafe(32)
            self.module.no_log_values.add(password)
            self.act('create replication role %s' % self.role,
                     sql.SQL('CREATE ROLE {} LOGIN REPLICATION PASSWORD {}').format(
                         sql.Identifier(self.role), sql.Literal(password)))
            self.write_passfile(password)
        else:
            if not exists:
                self.act('give role %s LOGIN REPLICATION' % self.role,
                         sql.SQL('ALTER ROLE {} LOGIN REPLICATION').format(sql.Identifier(self.role)))
            if password is None or not self.password_works(password):
                password = secrets.token_urlsafe(32)
                self.module.no_log_values.add(password)
                self.act('set a new password for role %s (the passfile had none that works)' % self.role,
                         sql.SQL('ALTER ROLE {} PASSWORD {}').format(sql.Identifier(self.role), sql.Literal(password)))
                self.write_passfile(password)
            elif (os.stat(self.layout.passfile).st_mode & 0o777) != 0o600:
                self.write_passfile(password)
        self.ensure_grants()

    def write_passfile(self, password):
        self.module.no_log_values.add(password)
        if write_if_changed(self.layout.passfile, passfile_line(self.role, password), mode=0o600, check=self.check):
            self.change('write the password of %s to %s (mode 0600)' % (self.role, self.layout.passfile))

    def password_works(self, password):
        try:
            params = dict(self.params, login_user=self.role, login_password=password)
            connect(params, dbname=self.dbname).close()
            return True
        except psycopg.OperationalError as exc:
            return 'password authentication failed' not in str(exc)

    def db_conn(self):
        if self.dbname == self.params['login_db']:
            return self.conn
        return connect(self.params, dbname=self.dbname)

    def ensure_grants(self):
        role_exists = self.scalar('SELECT 1 FROM pg_roles WHERE rolname = %s', (self.role,))
        conn = self.db_conn()
        for granted in GRANT_ROLES:
            if not role_exists or not self.scalar("SELECT pg_has_role(%s, %s, 'USAGE')", (self.role, granted)):
                self.act('grant %s to %s' % (granted, self.role),
                         sql.SQL('GRANT {} TO {}').format(sql.Identifier(granted), sql.Identifier(self.role)))
        for function in GRANT_FUNCTIONS:
            if not role_exists or not self.scalar("SELECT has_function_privilege(%s, %s, 'EXECUTE')",
                                                  (self.role, function), conn=conn):
                # The signature is ours, a constant: only the role is an identifier from outside.
                self.act('allow %s to execute %s in database %s' % (self.role, function, self.dbname),
                         sql.SQL('GRANT EXECUTE ON FUNCTION ' + function + ' TO {}').format(sql.Identifier(self.role)),
                         conn=conn)

    # -- slot
    def ensure_slot(self):
        if self.scalar('SELECT 1 FROM pg_replication_slots WHERE slot_name = %s', (self.slot,)):
            return
        # immediately_reserve: WAL from this moment on is kept even before the receiver first connects.
        self.act('create physical replication slot %s' % self.slot,
                 'SELECT pg_create_physical_replication_slot(%s, true)', (self.slot,))

    def drop_slot(self):
        if not self.scalar('SELECT 1 FROM pg_replication_slots WHERE slot_name = %s', (self.slot,)):
            return
        self.change('drop replication slot %s' % self.slot)
        if self.check:
            return
        # barman receive-wal --stop ends barman, but its pg_receivewal child can keep streaming until the server
        # ends the walsender: a short grace, then that.
        deadline = time.time() + 3
        while self.scalar('SELECT active FROM pg_replication_slots WHERE slot_name = %s', (self.slot,)):
            if time.time() > deadline:
                pid = self.scalar('SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s', (self.slot,))
                self.conn.execute('SELECT pg_terminate_backend(%s)', (pid,))
            time.sleep(0.2)
            if time.time() > deadline + 10:
                raise PitrError('replication slot %s stays in use; stop whatever streams from it and run again'
                                % self.slot)
        self.conn.execute('SELECT pg_drop_replication_slot(%s)', (self.slot,))

    # -- barman
    def ensure_barman_conf(self):
        info = dict(host=self.params['login_host'], port=self.params['login_port'], role=self.role,
                    dbname=self.dbname, slot=self.slot,
                    description='stackops PITR of %s' % describe_target(self.params))
        user = __import__('pwd').getpwuid(os.getuid()).pw_name
        for path, content in ((self.layout.conf, barman_global_conf(self.layout, user)),
                              (self.layout.server_conf, barman_server_conf(self.layout, self.params, info))):
            if write_if_changed(path, content, mode=0o600, check=self.check):
                self.change('write Barman configuration %s' % path)
        for directory in (self.layout.home, self.layout.staging, self.layout.verified,
                          os.path.dirname(self.layout.log)):
            if not os.path.isdir(directory) and not self.check:
                os.makedirs(directory, 0o700)

    def receiver_alive(self):
        active = self.scalar('SELECT active FROM pg_replication_slots WHERE slot_name = %s', (self.slot,))
        return bool(active) and lock_held(self.layout.receiver_lock())

    def ensure_receiver(self):
        if self.receiver_alive():
            return
        self.change('start the WAL receiver (barman cron, receive-wal %s)' % self.layout.server)
        if self.check:
            return
        barman = Barman(self.module, self.layout)
        barman.run(['cron'], detach=True)
        started = time.time()
        deadline = started + 20
        while not self.receiver_alive():
            disk = archive_disk(self.layout)
            # A full disk: the receiver exits as soon as it needs a new segment; no point waiting the full 20 s.
            if time.time() > deadline or (disk['full'] and time.time() > started + 3
                                          and not lock_held(self.layout.receiver_lock())):
                problems = receiver_problems(self.layout, False, disk, receiver_error(self.layout),
                                             synchronous=self.sync_is_ours()[1])
                raise PitrError('the WAL receiver did not start streaming from slot %s: %s; run `%s` for '
                                'details' % (self.slot, '; '.join(problems),
                                             ' '.join(barman.argv(['check', self.layout.server]))))
            time.sleep(0.3)

    # -- synchronous receiving
    def sync_is_ours(self):
        current = (self.scalar('SHOW synchronous_standby_names') or '').strip()
        return current, current in (SYNC_NAME, '"%s"' % SYNC_NAME)

    def receiver_synchronous(self):
        """Whether this server's pg_receivewal runs with --synchronous: Barman decides that when it starts it."""
        streaming = '--directory=%s' % os.path.join(self.layout.server_home, 'streaming')
        for pid in os.listdir('/proc'):
            if not pid.isdigit():
                continue
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                    argv = handle.read().decode('utf-8', 'replace').split('\0')
            except (IOError, OSError):
                continue
            if argv[0].endswith('pg_receivewal') and streaming in argv:
                return '--synchronous' in argv
        return False

    def set_sync(self, on):
        state = self.load_state()
        if on:
            self.act('set synchronous_standby_names = %s (ALTER SYSTEM): commits wait until the WAL receiver has '
                     'flushed them' % SYNC_NAME, sql.SQL('ALTER SYSTEM SET synchronous_standby_names = {}').format(
                         sql.Literal('"%s"' % SYNC_NAME)))
        else:
            self.act('reset synchronous_standby_names (ALTER SYSTEM RESET): commits no longer wait for the WAL '
                     'receiver', 'ALTER SYSTEM RESET synchronous_standby_names')
        if not self.check:
            self.conn.execute('SELECT pg_reload_conf()')
            state['synchronous'] = on
            self.save_state(state)

    def ensure_synchronous(self):
        current, ours = self.sync_is_ours()
        if not self.params['synchronous']:
            if ours and self.load_state().get('synchronous'):
                self.set_sync(False)
            return
        if current and not ours:
            raise PitrError('synchronous_standby_names is already %r, not set by stackops; add %s to it yourself, or '
                            'leave stackops_pitr_synchronous off' % (current, SYNC_NAME))
        if not ours:
            self.set_sync(True)
        if self.receiver_synchronous():
            return
        self.change('restart the WAL receiver as pg_receivewal --synchronous')
        if self.check:
            return
        Barman(self.module, self.layout).run(['receive-wal', '--stop', self.layout.server], check=False)
        deadline = time.time() + 15
        while lock_held(self.layout.receiver_lock()) and time.time() < deadline:
            time.sleep(0.2)
        self.ensure_receiver()
        if not self.receiver_synchronous():
            raise PitrError('the WAL receiver of %s did not start as pg_receivewal --synchronous; commits wait for it '
                            'now: run `stackops pitr enable -e stackops_pitr_synchronous=false` to stop waiting, and '
                            'see %s' % (self.layout.server, self.layout.log))

    def ensure_cron(self, present):
        path = self.params.get('cron_file')
        if not path:
            return
        if present:
            barman = Barman(self.module, self.layout)
            content = ('# stackops PITR: restarts the WAL receiver and archives streamed WAL (docs/pitr.md)\n'
                       'PATH=%s\n* * * * * root %s -q cron >> %s 2>&1\n') % (
                os.environ.get('PATH', '/usr/bin:/bin'), ' '.join(barman.argv([])), self.layout.log)
            if write_if_changed(path, content, mode=0o644, check=self.check):
                self.change('write the receiver supervision cron entry %s' % path)
        elif os.path.exists(path):
            self.change('remove cron entry %s' % path)
            if not self.check:
                os.unlink(path)

    def enable(self):
        self.settings()
        self.ensure_barman_conf()
        self.ensure_hba(True)
        self.ensure_role()
        if self.restart_required:
            return
        self.ensure_slot()
        self.ensure_cron(True)
        if not self.params['synchronous']:
            # Before the receiver: turning waiting off must work even when the receiver cannot start.
            self.ensure_synchronous()
        if self.params['start_receiver']:
            self.ensure_receiver()
            if self.params['synchronous']:
                # Last: with the receiver streaming, so commits never wait for a receiver that is not there yet.
                self.ensure_synchronous()

    def disable(self):
        # First: once the receiver is gone, commits would wait for it forever.
        if self.sync_is_ours()[1]:
            self.set_sync(False)
        if os.path.exists(self.layout.server_conf) and lock_held(self.layout.receiver_lock()):
            self.change('stop the WAL receiver of %s' % self.layout.server)
            if not self.check:
                Barman(self.module, self.layout).run(['receive-wal', '--stop', self.layout.server], check=False)
        self.ensure_cron(False)
        self.drop_slot()
        self.ensure_hba(False)
        if self.scalar('SELECT 1 FROM pg_roles WHERE rolname = %s', (self.role,)):
            conn = self.db_conn()
            self.act('revoke the grants of %s in database %s' % (self.role, self.dbname),
                     sql.SQL('DROP OWNED BY {}').format(sql.Identifier(self.role)), conn=conn)
            self.act('drop role %s' % self.role, sql.SQL('DROP ROLE {}').format(sql.Identifier(self.role)))
        for path in (self.layout.passfile, self.layout.server_conf):
            if os.path.exists(path):
                self.change('remove %s' % path)
                if not self.check:
                    os.unlink(path)
        state = self.load_state()
        for name in state.get('settings', []):
            self.act('reset %s (ALTER SYSTEM RESET; takes effect at the next restart)' % name,
                     sql.SQL('ALTER SYSTEM RESET {}').format(sql.Identifier(name)))
        if state.get('settings') and not self.check:
            self.conn.execute('SELECT pg_reload_conf()')
            state['settings'] = []
            self.save_state(state)


def main():
    spec = dict(
        state=dict(type='str', choices=['enabled', 'absent'], default='enabled'),
        role=dict(type='str', default='stackops_pitr'),
        slot=dict(type='str', default='stackops_pitr'),
        dbname=dict(type='str'),
        hba_address=dict(type='str', default='samenet'),
        recovery_window_days=dict(type='int', default=7),
        minimum_backups=dict(type='int', default=1),
        compression=dict(type='str', choices=['zstd', 'gzip', 'lz4'], default='zstd'),
        start_receiver=dict(type='bool', default=True),
        cron_file=dict(type='path'),
        synchronous=dict(type='bool', default=False),
        compose_service=dict(type='str', required=True),
    )
    spec.update(pg_connection_spec())
    spec.update(compose_argument_spec())
    spec.update(pitr_argument_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    prepare(module)
    if not server_name_ok(module.params['server_name']):
        module.fail_json(msg='server_name %r is not a valid Barman server name (letters, digits, . _ -)'
                             % module.params['server_name'])
    try:
        pitr = Pitr(module)
        if module.params['state'] == 'enabled':
            pitr.enable()
        else:
            pitr.disable()
        alive = pitr.receiver_alive() if module.params['state'] == 'enabled' else False
    except PitrError as exc:
        module.fail_json(msg=str(exc))
    except psycopg.Error as exc:
        module.fail_json(msg='PostgreSQL error at %s: %s' % (describe_target(module.params), str(exc).strip()))
    module.exit_json(changed=bool(pitr.changes), changes=pitr.changes, restart_required=pitr.restart_required,
                     receiver_alive=alive, hba_file=pitr.hba_file, slot=pitr.slot)


if __name__ == '__main__':
    main()
