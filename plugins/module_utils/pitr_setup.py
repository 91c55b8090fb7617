# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turning continuous WAL archiving with Barman on and off for a compose PostgreSQL (module pg_pitr, docs/pitr.md).

Each step of ``Pitr.enable()`` acts only when needed, so a second run changes nothing, and in check mode every
change is listed in ``changes`` and none is made.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import secrets
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_command
from ansible_collections.stackops.runbooks.plugins.module_utils.compose_detect import db_facts
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect, describe_target, psycopg, sql
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    HBA_MARKER, SYNC_NAME, Barman, Layout, PitrError, archive_disk, barman_global_conf, barman_server_conf, lock_held,
    passfile_line, read_passfile_password, receiver_error, receiver_problems, server_name_ok, write_if_changed)
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_storage import compose_json, service_config
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_standby import ensure_standby, load_record


WANTED = (('wal_level', None), ('max_wal_senders', 10), ('max_replication_slots', 10))
GRANT_FUNCTIONS = ('pg_backup_start(text, boolean)', 'pg_backup_stop(boolean)', 'pg_switch_wal()',
                   'pg_create_restore_point(text)')
GRANT_ROLES = ('pg_read_all_settings', 'pg_read_all_stats', 'pg_checkpoint')
# Barman's normal connection goes to the maintenance database. Function grants live in the database they are made in
# and pg_dump dumps them with it: made in an application database, they would put GRANTs to a role that exists only
# where PITR is on into every logical backup of it.
MAINTENANCE_DB = 'postgres'
# Databases other than ``dbname`` in which the role holds privileges on functions (pg_shdepend records every grant to
# a role, per database, so no database has to be visited to find them).
STRAY_GRANTS = (
    "SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid "
    "JOIN pg_roles r ON r.oid = s.refobjid "
    "WHERE s.refclassid = 'pg_authid'::regclass AND s.deptype = 'a' AND s.classid = 'pg_proc'::regclass "
    "AND r.rolname = %s AND d.datname <> %s AND d.datallowconn ORDER BY 1")
GRANTED_IN_DB = (
    "SELECT 1 FROM pg_proc p, aclexplode(p.proacl) a JOIN pg_roles r ON r.oid = a.grantee "
    "WHERE p.oid = %s::regprocedure AND r.rolname = %s")
ROLE_DATABASES = (
    "SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid "
    "JOIN pg_roles r ON r.oid = s.refobjid WHERE s.refclassid = 'pg_authid'::regclass AND r.rolname = %s "
    "AND d.datallowconn ORDER BY 1")


def refuse_unpublished(module):
    """Barman's WAL receiver runs on the managed host, supervised by cron, for as long as PITR is on: it needs an
    address of the server that stays the same. A container's address on its compose network changes when the
    container is recreated, and may then belong to another container. So an unpublished database port is refused
    before anything changes, with the fix: publish it on loopback in an override file."""
    params = module.params
    service = params['compose_service']
    config = compose_json(module, params, ['config', '--format', 'json'])
    spec = service_config(config, service)
    facts = db_facts(service, spec, config)
    # An unpublished port is reachable by a one-off connection (compose:<project>/<service>, looked up when it
    # connects: module_utils/pg.py), not by a receiver that runs for months from one conninfo.
    if facts['published'] or spec.get('network_mode') == 'host':
        return
    files = ' '.join('-f %s' % name for name in (params.get('compose_files') or ['docker-compose.yml']))
    raise PitrError(
        'the database port of compose service %s is not published on this host, and the WAL receiver (Barman on the '
        'host) needs a fixed address of the server: a container\'s address on its compose network changes when the '
        'container is recreated. Publish the port on loopback in an override file, e.g. docker-compose.pitr.yml with '
        '`services: {%s: {ports: ["127.0.0.1:5432:%d"]}}` (any free host port), add it to the project (`stackops init '
        '%s -f docker-compose.pitr.yml`, or stackops_compose_files and stackops_db_host/stackops_db_port in the '
        'inventory), run `docker compose ... up -d %s`, then `stackops pitr enable` again; nothing was changed'
        % (service, service, facts['container_port'], files, service))


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
        self.dbname = self.params['dbname'] or MAINTENANCE_DB
        self.conn = connect(self.params)
        self.hba_file = self.scalar('SHOW hba_file')
        if self.params['state'] == 'enabled' and not self.scalar(
                'SELECT 1 FROM pg_database WHERE datname = %s AND datallowconn', (self.dbname,)):
            raise PitrError(
                'database %s, which Barman connects to and where the replication role gets its function grants, does '
                'not exist on %s (or allows no connections); create it (CREATE DATABASE %s) or set dbname to another '
                'database that is not an application database: grants made in a database go into its logical '
                'backups; nothing was changed' % (self.dbname, describe_target(self.params), self.dbname))

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
        # pg_hba_file_rules parses the file on disk, not what the server loaded: a file PostgreSQL would reject is
        # put back before any reload, and nothing needs to wait for the reload to land.
        errors = self.conn.execute(
            'SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL').fetchall()
        if errors:
            self.write_hba(previous)
            raise PitrError('PostgreSQL rejected %s after the edit (%s); the previous file was put back' % (
                self.hba_file, '; '.join('line %s: %s' % row for row in errors)))
        self.conn.execute('SELECT pg_reload_conf()')

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
            self.set_new_password('create replication role %s' % self.role,
                                  'CREATE ROLE {} LOGIN REPLICATION PASSWORD {}')
        else:
            if not exists:
                self.act('give role %s LOGIN REPLICATION' % self.role,
                         sql.SQL('ALTER ROLE {} LOGIN REPLICATION').format(sql.Identifier(self.role)))
            if password is None or not self.password_works(password):
                self.set_new_password('set a new password for role %s (the passfile had none that works)' % self.role,
                                      'ALTER ROLE {} PASSWORD {}')
            elif (os.stat(self.layout.passfile).st_mode & 0o777) != 0o600:
                self.write_passfile(password)
        self.ensure_grants()

    def set_new_password(self, text, statement):
        """A generated password: its SCRAM-SHA-256 verifier goes to the server (computed by libpq on this side, so the
        statement carries no plaintext and none lands in the server log with log_statement = ddl, or in
        pg_stat_statements), the password itself only to the passfile."""
        password = secrets.token_urlsafe(32)
        self.module.no_log_values.add(password)
        verifier = self.conn.pgconn.encrypt_password(password.encode('utf-8'), self.role.encode('utf-8'),
                                                     b'scram-sha-256').decode('ascii')
        self.act(text, sql.SQL(statement).format(sql.Identifier(self.role), sql.Literal(verifier)))
        self.write_passfile(password)

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

    def db_conn(self, dbname=None):
        dbname = dbname or self.dbname
        if dbname == self.params['login_db']:
            return self.conn
        return connect(self.params, dbname=dbname)

    def ensure_grants(self):
        role_exists = self.scalar('SELECT 1 FROM pg_roles WHERE rolname = %s', (self.role,))
        conn = self.db_conn()
        try:
            self.grant_in(conn, role_exists)
        finally:
            if conn is not self.conn:
                conn.close()
        if role_exists:
            self.revoke_stray_grants()

    def grant_in(self, conn, role_exists):
        for granted in GRANT_ROLES:
            if not role_exists or not self.scalar("SELECT pg_has_role(%s, %s, 'USAGE')", (self.role, granted)):
                self.act('grant %s to %s' % (granted, self.role),
                         sql.SQL('GRANT {} TO {}').format(sql.Identifier(granted), sql.Identifier(self.role)))
        for function in GRANT_FUNCTIONS:
            if not role_exists or not self.scalar("SELECT has_function_privilege(%s, %s, 'EXECUTE')",
                                                  (self.role, 'pg_catalog.' + function), conn=conn):
                # The signature is ours, a constant: only the role is an identifier from outside.
                self.act('allow %s to execute %s in database %s' % (self.role, function, self.dbname),
                         sql.SQL('GRANT EXECUTE ON FUNCTION pg_catalog.' + function + ' TO {}').format(
                             sql.Identifier(self.role)), conn=conn)

    def revoke_stray_grants(self):
        """Grants of earlier versions, which made them in the login database (usually the application's): revoked
        wherever they are but in ``dbname``, so the application's dumps restore onto servers without the role."""
        for dbname in [row[0] for row in self.conn.execute(STRAY_GRANTS, (self.role, self.dbname)).fetchall()]:
            conn = self.db_conn(dbname)
            try:
                for function in GRANT_FUNCTIONS:
                    if self.scalar(GRANTED_IN_DB, ('pg_catalog.' + function, self.role), conn=conn):
                        self.act('revoke execute on %s from %s in database %s (grants belong in %s only)' % (
                            function, self.role, dbname, self.dbname),
                            sql.SQL('REVOKE EXECUTE ON FUNCTION pg_catalog.' + function + ' FROM {}').format(
                                sql.Identifier(self.role)), conn=conn)
            finally:
                if conn is not self.conn:
                    conn.close()

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
        deadline = time.time() + 20
        while True:
            disk = archive_disk(self.layout)
            # A full disk (less than one segment free): a receiver that starts stops again at its next segment, so
            # this fails at once, whether it streams for the moment or not; it may still fill its current segment.
            if disk['full'] or time.time() > deadline:
                problems = receiver_problems(self.layout, False, disk, receiver_error(self.layout),
                                             synchronous=self.sync_is_ours()[1])
                raise PitrError('the WAL receiver did not start streaming from slot %s: %s; run `%s` for '
                                'details' % (self.slot, '; '.join(problems),
                                             ' '.join(barman.argv(['check', self.layout.server]))))
            if self.receiver_alive():
                return
            time.sleep(0.05)

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
        if self.params.get('standby') or load_record(self.layout):
            ensure_standby(self)

    def disable(self):
        # First: once the receiver is gone, commits would wait for it forever.
        if self.sync_is_ours()[1]:
            self.set_sync(False)
        self.params['standby'] = False
        ensure_standby(self)
        if os.path.exists(self.layout.server_conf) and lock_held(self.layout.receiver_lock()):
            self.change('stop the WAL receiver of %s' % self.layout.server)
            if not self.check:
                Barman(self.module, self.layout).run(['receive-wal', '--stop', self.layout.server], check=False)
        self.ensure_cron(False)
        self.drop_slot()
        self.ensure_hba(False)
        if self.scalar('SELECT 1 FROM pg_roles WHERE rolname = %s', (self.role,)):
            # Every database that holds a grant to the role (also those earlier versions made grants in), or
            # DROP ROLE refuses.
            for dbname in [row[0] for row in self.conn.execute(ROLE_DATABASES, (self.role,)).fetchall()]:
                conn = self.db_conn(dbname)
                try:
                    self.act('revoke the grants of %s in database %s' % (self.role, dbname),
                             sql.SQL('DROP OWNED BY {}').format(sql.Identifier(self.role)), conn=conn)
                finally:
                    if conn is not self.conn:
                        conn.close()
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


def run(module):
    """pg_pitr: set everything up (state=enabled) or undo it (state=absent); the module's result."""
    params = module.params
    if not server_name_ok(params['server_name']):
        raise PitrError('server_name %r is not a valid Barman server name (letters, digits, . _ -)'
                        % params['server_name'])
    enabled = params['state'] == 'enabled'
    if enabled:
        refuse_unpublished(module)
    pitr = Pitr(module)
    if enabled:
        pitr.enable()
    else:
        pitr.disable()
    return dict(changed=bool(pitr.changes), changes=pitr.changes, restart_required=pitr.restart_required,
                receiver_alive=pitr.receiver_alive() if enabled else False, hba_file=pitr.hba_file, slot=pitr.slot,
                standby=load_record(pitr.layout))
