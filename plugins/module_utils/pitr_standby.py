# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The opt-in warm standby (``stackops_pitr_standby: true``, docs/pitr.md "Warm standby").

A hot standby of the stack's PostgreSQL, in new storage beside the live data (the same filesystem, so the recovery's
one-rename swap works on it), seeded with pg_basebackup and kept replaying by streaming from the primary over the
project's network through a replication slot of its own. It runs the service's own image in one labelled container
stackops manages (``restart unless-stopped``, no host ports, local trust on a socket only).

``<pitr_dir>/standby.json`` names the storage before it is created and says whether the seed finished: setup,
recovery and status read it, never a listing of volumes (after a swap the standby's storage holds the data from
before the recovery, which nothing may mistake for a standby).

Used by pg_pitr (setup, ``ensure_standby``), pg_pitr_restore (``Standby`` in pitr_restore.Recovery.via_standby) and
pg_pitr_info (``standby_status``).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os
import re
import shutil
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import run_compose
from ansible_collections.stackops.runbooks.plugins.module_utils.compose_detect import db_facts
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    RECOVERY_KEYS, PitrError, iso, lsn_int, parse_ts, passfile_line, primary_connection, read_passfile_password,
    utc_stamp, write_if_changed)
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_storage import (
    Docker, Storage, chown_tree, compose_json, service_config, service_image)

STANDBY_LABEL = 'stackops.pitr.standby'
# Settings of a standby, written into its postgresql.auto.conf; removed again before the service runs on it.
STANDBY_KEYS = ('primary_conninfo', 'primary_slot_name', 'recovery_min_apply_delay', 'hot_standby')
PASSFILE = 'stackops-standby.pgpass'
APPLICATION_NAME = 'stackops_standby'
# How long a recovery waits for the standby to receive the primary's newest WAL before it takes the base backup path.
CATCH_UP_SECONDS = 30
START_SECONDS = 120
# Local trust on a socket in /tmp and no TCP listener: nothing but `docker exec` reaches the standby.
SERVER_SCRIPT = ('printf "local all all trust\\n" > /tmp/stackops-hba.conf && exec postgres -D "$0" '
                 '-c listen_addresses= -c unix_socket_directories=/tmp -c hba_file=/tmp/stackops-hba.conf')
SEED_SCRIPT = ('set -e; umask 077; cat > /tmp/stackops-seed.pgpass; PGPASSFILE=/tmp/stackops-seed.pgpass '
               'pg_basebackup -h "$1" -p "$2" -U "$3" -D "$4" -S "$5" -X stream -c fast --no-password; '
               'rm -f /tmp/stackops-seed.pgpass')
_UNITS = {'us': 0.000001, 'ms': 0.001, 's': 1, 'min': 60, 'h': 3600, 'd': 86400}


# --- pure logic (tests/unit/test_pitr_standby.py) -------------------------------------------------------------------
def parse_delay(text):
    """Seconds of a ``recovery_min_apply_delay`` value as PostgreSQL reads it ('15min', '30s', '1h', 500 = ms)."""
    value = str(text if text is not None else '').strip()
    if value in ('', '0'):
        return 0
    match = re.match(r'^(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?$', value)
    if not match:
        raise PitrError('stackops_pitr_standby_delay %r is not a PostgreSQL time: use a number with one of the units '
                        'ms, s, min, h, d (e.g. 15min); nothing was changed' % value)
    return float(match.group(1)) * _UNITS[match.group(2) or 'ms']


def window_check(target, position, now):
    """Whether a standby whose replay stands at ``position`` (epoch; None: unknown) can stop at ``target``:
    ``(usable, reason)``. Replay only goes forward, so the target must not be behind it."""
    if position is None:
        return False, 'the standby\'s replay position in time is unknown'
    if target > now:
        return False, 'the target %s is in the future' % iso(target)
    if target < position:
        return False, ('the target %s is outside the standby\'s delay window: it has replayed up to %s already' % (
            iso(target), iso(position)))
    return True, 'the target %s is inside the standby\'s delay window (replayed up to %s)' % (iso(target), iso(position))


def replay_lag(primary_lsn, receive_lsn, replay_lsn, replay_time, now):
    """``(bytes, seconds)`` the standby's replay is behind: bytes of WAL behind the primary (else behind what it
    received, when the primary is not there), seconds since the last transaction it replayed (0 once it replayed
    everything). None where unknown."""
    ahead = primary_lsn or receive_lsn
    if not replay_lsn or not ahead:
        return None, None
    behind = max(0, lsn_int(ahead) - lsn_int(replay_lsn))
    if behind == 0:
        return 0, 0.0
    return behind, (round(max(0.0, now - replay_time), 3) if replay_time is not None else None)


def conf_value(value):
    return "'%s'" % str(value).replace('\\', '\\\\').replace("'", "''")


def conninfo_value(value):
    return "'%s'" % str(value).replace('\\', '\\\\').replace("'", "\\'")


def standby_settings(host, port, role, passfile, slot, delay):
    conninfo = 'host=%s port=%s user=%s passfile=%s application_name=%s' % (
        conninfo_value(host), int(port), conninfo_value(role), conninfo_value(passfile), APPLICATION_NAME)
    return [('primary_conninfo', conninfo), ('primary_slot_name', slot), ('hot_standby', 'on'),
            ('recovery_min_apply_delay', delay or '0')]


def rewrite_auto_conf(data_dir, drop_keys, add=()):
    """postgresql.auto.conf without the lines of ``drop_keys``, then ``add`` ((key, value), ...) appended."""
    conf = os.path.join(data_dir, 'postgresql.auto.conf')
    lines = []
    if os.path.exists(conf):
        with open(conf) as handle:
            lines = handle.readlines()
    kept = [line for line in lines if line.split('=', 1)[0].strip() not in drop_keys]
    kept += ['%s = %s\n' % (key, conf_value(value)) for key, value in add]
    if kept != lines:
        with open(conf, 'w') as handle:
            handle.writelines(kept)


def finish_promoted(data_dir):
    """The promoted standby becomes the service's data: no standby or recovery setting, no passfile left."""
    rewrite_auto_conf(data_dir, STANDBY_KEYS + RECOVERY_KEYS)
    for name in (PASSFILE, 'standby.signal', 'recovery.signal'):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            os.unlink(path)


# --- the standby's record and container -------------------------------------------------------------------------
def container_name(server):
    return 'stackops-pitr-standby-%s' % server


def record_path(layout):
    return os.path.join(layout.root, 'standby.json')


def load_record(layout):
    try:
        with open(record_path(layout)) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


def save_record(layout, record):
    write_if_changed(record_path(layout), json.dumps(record, indent=2, sort_keys=True) + '\n', mode=0o600)


def drop_record(layout):
    if os.path.exists(record_path(layout)):
        os.unlink(record_path(layout))


class Standby(object):
    """The standby container of one server and queries to it through ``docker exec`` (local trust, no password)."""

    def __init__(self, docker, layout):
        self.docker = docker
        self.layout = layout
        self.name = container_name(layout.server)
        self.record = load_record(layout)

    def inspect(self):
        rc, out, dummy = self.docker.run(['inspect', '--format', '{{json .}}', self.name], check=False)
        if rc != 0:
            return None
        data = json.loads(out)
        state = data.get('State') or {}
        return dict(running=bool(state.get('Running')), status=state.get('Status'),
                    labels=(data.get('Config') or {}).get('Labels') or {})

    def user(self, info=None):
        info = info or self.inspect() or {}
        return (info.get('labels') or {}).get('%s.user' % STANDBY_LABEL) or 'postgres'

    def psql(self, user, query, check=True, variables=()):
        args = ['exec', self.name, 'psql', '-X', '-h', '/tmp', '-U', user, '-d', 'postgres', '-At', '-F', '|',
                '-v', 'ON_ERROR_STOP=1']
        for key, value in variables:
            args += ['-v', '%s=%s' % (key, value)]
        rc, out, err = self.docker.run(args + ['-c', query], check=False)
        if check and rc != 0:
            raise PitrError('query on the warm standby %s failed: %s' % (self.name, (err or out).strip()[-800:]))
        return rc, out.strip(), err

    def state(self, user):
        """What the standby says about itself, or None when it does not answer."""
        rc, out, dummy = self.psql(user, (
            "SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), "
            "extract(epoch FROM pg_last_xact_replay_timestamp()), (SELECT status FROM pg_stat_wal_receiver), "
            "CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END, "
            "current_setting('recovery_min_apply_delay'), extract(epoch FROM clock_timestamp())"), check=False)
        if rc != 0 or not out:
            return None
        fields = out.split('\n')[-1].split('|')
        return dict(in_recovery=fields[0] == 't', receive_lsn=fields[1] or None, replay_lsn=fields[2] or None,
                    replay_time=float(fields[3]) if fields[3] else None, receiver=fields[4] or None,
                    pause=fields[5] or None, delay=fields[6], now=float(fields[7]))

    def wait(self, user, predicate, timeout, what):
        deadline = time.time() + timeout
        while True:
            found = self.state(user)
            if found is not None and predicate(found):
                return found
            if time.time() > deadline:
                logs = self.docker.run(['logs', '--tail', '20', self.name], check=False)
                raise PitrError('the warm standby %s did not %s within %d s: %s' % (
                    self.name, what, timeout, (logs[1] + logs[2]).strip()[-1500:]))
            time.sleep(0.1)

    def remove_container(self, check=False):
        if self.inspect() is None:
            return []
        if not check:
            # A clean stop first (SIGINT, fast shutdown): the storage is then consistent whatever happens next.
            self.docker.run(['stop', self.name], check=False)
            self.docker.run(['rm', '-f', self.name], check=False)
        return ['remove the warm standby container %s' % self.name]

    def remove_storage(self, check=False):
        """The standby's storage as standby.json names it (a labelled volume of this server, or the bind sibling)."""
        record = self.record or {}
        name = record.get('storage')
        if not name:
            return []
        done = []
        if record.get('kind') == 'volume':
            rc, out, dummy = self.docker.run(['volume', 'inspect', '--format',
                                              '{{index .Labels "%s"}}' % STANDBY_LABEL, name], check=False)
            if rc == 0 and out.strip() == self.layout.server:
                done.append('remove the warm standby volume %s' % name)
                if not check:
                    self.docker.run(['volume', 'rm', '-f', name])
        elif os.path.isdir(name) and '.standby-' in os.path.basename(name):
            done.append('remove the warm standby directory %s' % name)
            if not check:
                shutil.rmtree(name)
        return done


def standby_status(docker, layout, primary_lsn):
    """pg_pitr_info's ``standby``: None when no standby was set up, else its state and replay lag (read-only)."""
    standby = Standby(docker, layout)
    record = standby.record
    if not record:
        return None
    info = standby.inspect()
    found = dict(container=standby.name, storage=record.get('storage'), seeded_at=record.get('seeded_at'),
                 state='missing' if info is None else ('running' if info['running'] else info['status']),
                 delay=record.get('delay'), in_recovery=None, receiver=None, receive_lsn=None, replay_lsn=None,
                 replayed_until=None, lag_bytes=None, lag_seconds=None, healthy=False)
    if record.get('state') != 'ready':
        found['state'] = 'seeding'
    elif info and info['running']:
        state = standby.state(standby.user(info))
        if state is None:
            found['state'] = 'not answering'
        else:
            found.update(in_recovery=state['in_recovery'], receiver=state['receiver'],
                         receive_lsn=state['receive_lsn'], replay_lsn=state['replay_lsn'],
                         replayed_until=iso(state['replay_time']), delay=state['delay'])
            found['lag_bytes'], found['lag_seconds'] = replay_lag(primary_lsn, state['receive_lsn'],
                                                                  state['replay_lsn'], state['replay_time'],
                                                                  state['now'])
            found['healthy'] = state['in_recovery'] and state['receiver'] == 'streaming'
    return found


def standby_brief(docker, layout):
    """The standby for `stackops status`: its record and its container's state, without a query; None without one."""
    standby = Standby(docker, layout)
    record = standby.record
    if not record:
        return None
    info = standby.inspect()
    state = 'seeding' if record.get('state') != 'ready' else (
        'missing' if info is None else ('running' if info['running'] else info['status']))
    return dict(container=standby.name, storage=record.get('storage'), seeded_at=record.get('seeded_at'),
                delay=record.get('delay'), state=state)


def standby_problem(found):
    """One sentence when the standby is not serving, with what to do; None when it is (or there is none)."""
    if not found or found['healthy']:
        return None
    if found['state'] == 'running' and found['in_recovery'] and found['receiver'] != 'streaming':
        why = 'is not streaming from the primary (receiver %s)' % (found['receiver'] or 'stopped')
    elif found['state'] == 'running' and found['in_recovery'] is False:
        why = 'is no longer in recovery'
    else:
        why = 'is %s' % found['state']
    return ('the warm standby %s %s: a restore takes the base-backup path until it is back; run `stackops pitr '
            'enable -e stackops_pitr_standby=true` to start or re-seed it' % (found['container'], why))


def primary_flush_lsn(layout):
    """The primary's flushed WAL position through Barman's connection (the replication role), None when it is down."""
    conn = primary_connection(layout)
    if conn is None:
        return None
    with conn:
        return conn.execute('SELECT pg_current_wal_flush_lsn()::text').fetchone()[0]


def position_in_time(record, state):
    """Where in time the standby's replay stands: the newest of its seed (everything committed before the base
    backup started is in it) and its last replayed transaction."""
    seeded = parse_ts(record.get('seeded_at')) if record and record.get('seeded_at') else None
    candidates = [value for value in (seeded, state.get('replay_time')) if value is not None]
    return max(candidates) if candidates else None


# --- setup (pg_pitr) --------------------------------------------------------------------------------------------
def standby_argument_spec():
    return dict(
        standby=dict(type='bool', default=False),
        standby_delay=dict(type='str', default='0'),
        standby_slot=dict(type='str', default='stackops_pitr_standby'),
    )


def primary_address(module, params, docker, config):
    """(network, host, port) the standby reaches the primary at: the compose network of the service's container and
    the service's name on it, which stays the same when compose recreates the container."""
    service = params['compose_service']
    spec = service_config(config, service)
    if spec.get('network_mode') == 'host':
        return 'host', '127.0.0.1', params['login_port']
    dummy, out, dummy2 = run_compose(module, params, ['ps', '-q', service], check_rc=False)
    ids = out.split()
    if not ids:
        raise PitrError('compose service %s has no running container, so the warm standby has nothing to stream '
                        'from; start it and run `stackops pitr enable` again' % service)
    dummy, out, dummy2 = docker.run(['inspect', '--format', '{{json .NetworkSettings.Networks}}', ids[0]])
    networks = sorted((json.loads(out) or {}).keys())
    if not networks:
        raise PitrError('the container of compose service %s is on no network the standby could join' % service)
    preferred = [name for name in networks if name.endswith('_default')] or networks
    return preferred[0], service, db_facts(service, spec, config)['container_port']


def ensure_standby(pitr):
    """Set the warm standby up (``standby``) or take it away, each step only when needed; ``pitr`` is the
    pitr_setup.Pitr of the run (its connection is a superuser's, its ``act``/``change`` list the changes)."""
    module, params, layout, check = pitr.module, pitr.params, pitr.layout, pitr.check
    docker = Docker(module)
    standby = Standby(docker, layout)
    slot = params['standby_slot']
    slot_exists = bool(pitr.scalar('SELECT 1 FROM pg_replication_slots WHERE slot_name = %s', (slot,)))
    if not params['standby']:
        done = standby.remove_container(check) + standby.remove_storage(check)
        for text in done:
            pitr.change(text)
        if slot_exists:
            pitr.act('drop replication slot %s of the warm standby' % slot, 'SELECT pg_drop_replication_slot(%s)',
                     (slot,))
        if standby.record and not check:
            drop_record(layout)
        return
    delay = params['standby_delay'] or '0'
    parse_delay(delay)
    config = compose_json(module, params, ['config', '--format', 'json'])
    pgdata = pitr.scalar('SHOW data_directory')
    storage = Storage(docker, config, params['compose_service'], pgdata)
    image = service_image(module, params, docker, config, params['compose_service'])
    network, host, port = primary_address(module, params, docker, config)
    wanted = dict(delay=delay, image=image, network=network, host=host, port=port, slot=slot,
                  user=params['login_user'], role=pitr.role, pgdata=pgdata)
    digest = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]
    record = standby.record or {}
    root = storage.root_of(record['storage']) if record.get('storage') else None
    dest = storage.data_dir(root) if root else None
    seeded = (record.get('state') == 'ready' and dest is not None and slot_exists
              and os.path.exists(os.path.join(dest, 'PG_VERSION')))
    info = standby.inspect()
    if (seeded and info and info['running'] and info['labels'].get('%s.config' % STANDBY_LABEL) == digest
            and record.get('delay') == delay):
        return
    for text in standby.remove_container(check):
        pitr.change(text + ' (to start it again)')
    if not seeded:
        pitr.change('seed the warm standby of %s beside the live data with pg_basebackup (slot %s, replay delay %s)' %
                    (layout.server, slot, delay))
        if check:
            return
        for text in standby.remove_storage():
            pitr.change(text + ' (re-seeded)')
        dest = seed(pitr, docker, storage, image, network, host, port, slot, slot_exists)
        record = load_record(layout)
    else:
        pitr.change('start the warm standby %s on %s' % (standby.name, record['storage']))
        if check:
            return
    owner = storage.owner(image)
    password = read_passfile_password(layout.passfile, pitr.role)
    passfile = os.path.join(pgdata, PASSFILE)
    write_if_changed(os.path.join(dest, PASSFILE), passfile_line(pitr.role, password), mode=0o600)
    rewrite_auto_conf(dest, STANDBY_KEYS + RECOVERY_KEYS, standby_settings(host, port, pitr.role, passfile, slot, delay))
    for name in (PASSFILE, 'postgresql.auto.conf', 'standby.signal'):
        path = os.path.join(dest, name)
        if not os.path.exists(path):
            open(path, 'a').close()
        os.chown(path, *owner)
    run_container(docker, standby.name, layout.server, image, network, owner, record['storage'],
                  storage.mount_target, pgdata, params['login_user'], digest)
    standby.wait(params['login_user'], lambda state: state['in_recovery'], START_SECONDS,
                 'start as a hot standby')
    record.update(delay=delay)
    save_record(layout, record)


def seed(pitr, docker, storage, image, network, host, port, slot, slot_exists):
    """New storage beside the live data, named in standby.json before it exists, filled by pg_basebackup through a
    fresh slot (a slot left from an earlier standby would hold WAL from its time on)."""
    layout = pitr.layout
    stamp = utc_stamp()
    owner = storage.owner(image)
    kind = storage.kind
    name = ('%s-standby-%s' % (storage.live, stamp.lower()) if kind == 'volume'
            else '%s.standby-%s' % (storage.live.rstrip('/'), stamp.lower()))
    record = dict(storage=name, kind=kind, live=storage.live, state='seeding', started=iso(time.time()))
    save_record(layout, record)
    if slot_exists:
        pitr.conn.execute('SELECT pg_drop_replication_slot(%s)', (slot,))
    pitr.conn.execute('SELECT pg_create_physical_replication_slot(%s, true)', (slot,))
    dest = storage.create(name, {'stackops.pitr.server': layout.server, STANDBY_LABEL: layout.server})
    if not os.path.isdir(dest):
        os.makedirs(dest, 0o700)
    chown_tree(storage.new_root, *owner)
    os.chmod(dest, 0o700)
    password = read_passfile_password(layout.passfile, pitr.role)
    pitr.module.no_log_values.add(password)
    seeded_at = iso(time.time())
    rc, out, err = docker.run(['run', '--rm', '-i', '--network', network, '--user', '%d:%d' % owner,
                               '-v', '%s:%s' % (name, storage.mount_target), '--entrypoint', 'sh', image,
                               '-c', SEED_SCRIPT, 'sh', host, str(port), pitr.role, storage.pgdata, slot],
                              check=False, data=passfile_line(pitr.role, password))
    if rc != 0:
        storage.remove()
        drop_record(layout)
        pitr.conn.execute('SELECT pg_drop_replication_slot(%s)', (slot,))
        raise PitrError('seeding the warm standby failed (pg_basebackup from %s:%s as %s in the image %s): %s; the '
                        'new storage was removed; check that the role may connect from the compose network '
                        '(pg_hba, `stackops pitr enable`) and run again' % (
                            host, port, pitr.role, image, (err or out).strip()[-1500:]))
    open(os.path.join(dest, 'standby.signal'), 'a').close()
    record.update(state='ready', seeded_at=seeded_at)
    save_record(layout, record)
    return dest


def run_container(docker, name, server, image, network, owner, source, target, pgdata, user, digest):
    docker.run(['run', '-d', '--name', name, '--restart', 'unless-stopped', '--network', network,
                '--user', '%d:%d' % owner, '--label', '%s=%s' % (STANDBY_LABEL, server),
                '--label', '%s.user=%s' % (STANDBY_LABEL, user), '--label', '%s.config=%s' % (STANDBY_LABEL, digest),
                '--label', 'stackops.pitr.server=%s' % server,
                '--stop-signal', 'SIGINT', '--stop-timeout', '120', '-v', '%s:%s' % (source, target),
                '--entrypoint', 'sh', image, '-c', SERVER_SCRIPT, pgdata])
