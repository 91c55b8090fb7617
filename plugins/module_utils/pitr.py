# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Point-in-time recovery with Barman in streaming mode: layout, configuration, catalog, recovery plumbing.

Barman does the real work (pg_basebackup, pg_receivewal, the WAL catalog, retention, recovery configuration);
this file only decides where its files live, writes its configuration, reads its catalog and moves the
recovered data directory into the compose project's storage.

On-disk layout under ``pitr_dir`` (docs/pitr.md; offsite copies ship ``home/`` and ``verified/``):

- ``barman.conf`` and ``barman.d/<server>.conf``: Barman's configuration, written by pg_pitr.
- ``pgpass``: the replication role's password (libpq passfile, mode 0600). Secret: never ship it.
- ``home/<server>/``: Barman's catalog (``base/``, ``meta/``, ``wals/``, ``streaming/``).
- ``verified/<backup_id>.json``: stackops' verification record of a base backup.
- ``swaps.json``: every data swap done by a recovery, with the volume that keeps the data from before.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import calendar
import ctypes
import ctypes.util
import datetime
import errno
import fcntl
import json
import os
import re
import sys
import tempfile
import time

HBA_MARKER = '# stackops-pitr'
DEFAULT_ROLE = 'stackops_pitr'
DEFAULT_SLOT = 'stackops_pitr'
RECOVERY_KEYS = ('restore_command', 'recovery_end_command', 'recovery_target_time', 'recovery_target_lsn',
                 'recovery_target_name', 'recovery_target_xid', 'recovery_target_immediate', 'recovery_target',
                 'recovery_target_action', 'recovery_target_inclusive', 'recovery_target_timeline')


class PitrError(Exception):
    """A failure with a message that says what failed, where, and what to do next."""


def pitr_argument_spec():
    return dict(
        pitr_dir=dict(type='path', required=True),
        server_name=dict(type='str', required=True),
        barman_bin=dict(type='path'),
        pg_bindir=dict(type='path', default='/usr/lib/postgresql/15/bin'),
    )


def scratch_check_argument_spec():
    """Options of the modules that start a recovered cluster in a scratch container and query it."""
    return dict(
        compose_service=dict(type='str', default='postgres'),
        check_user=dict(type='str', required=True),
        check_db=dict(type='str', required=True),
    )


def server_name_ok(name):
    return bool(re.match(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$', name)) and name != 'barman'


class Layout(object):
    def __init__(self, pitr_dir, server):
        self.root = pitr_dir
        self.server = server
        self.conf = os.path.join(pitr_dir, 'barman.conf')
        self.conf_dir = os.path.join(pitr_dir, 'barman.d')
        self.server_conf = os.path.join(self.conf_dir, '%s.conf' % server)
        self.passfile = os.path.join(pitr_dir, 'pgpass')
        self.home = os.path.join(pitr_dir, 'home')
        self.server_home = os.path.join(self.home, server)
        self.log = os.path.join(pitr_dir, 'log', 'barman.log')
        self.staging = os.path.join(pitr_dir, 'staging')
        self.verified = os.path.join(pitr_dir, 'verified')
        self.swaps = os.path.join(pitr_dir, 'swaps.json')
        self.state = os.path.join(pitr_dir, 'enabled.json')

    def receiver_lock(self):
        # Barman's own lock: held by `barman receive-wal` for as long as it runs.
        return os.path.join(self.home, '.%s-receive-wal.lock' % self.server)


def conninfo(host, port, user, dbname, passfile):
    def quote(value):
        return "'%s'" % str(value).replace('\\', '\\\\').replace("'", "\\'")
    return 'host=%s port=%s user=%s dbname=%s passfile=%s' % (
        quote(host), port, quote(user), quote(dbname), quote(passfile))


def barman_global_conf(layout, user):
    return (
        '; Written by stackops (pg_pitr); changes are overwritten.\n'
        '[barman]\n'
        'barman_home = %s\n'
        'barman_user = %s\n'
        'log_file = %s\n'
        'log_level = INFO\n'
        'configuration_files_directory = %s\n'
    ) % (layout.home, user, layout.log, layout.conf_dir)


def barman_server_conf(layout, params, info):
    """The server section. ``info`` has host, port, role, dbname, slot, description."""
    dsn = conninfo(info['host'], info['port'], info['role'], info['dbname'], layout.passfile)
    lines = [
        '; Written by stackops (pg_pitr); changes are overwritten.',
        '[%s]' % layout.server,
        'description = %s' % info['description'],
        'conninfo = %s' % dsn,
        'streaming_conninfo = %s' % dsn,
        'backup_method = postgres',
        'streaming_archiver = on',
        'archiver = off',
        'slot_name = %s' % info['slot'],
        'create_slot = manual',
        'path_prefix = %s' % params['pg_bindir'],
        # An immediate checkpoint: a spread one makes every base backup wait up to checkpoint_timeout.
        'immediate_checkpoint = true',
        'backup_compression = %s' % params['compression'],
        'backup_compression_location = server',
        'backup_compression_format = tar',
        'staging_path = %s' % layout.staging,
        'staging_location = local',
        'retention_policy = RECOVERY WINDOW OF %d DAYS' % params['recovery_window_days'],
        'minimum_redundancy = %d' % params['minimum_backups'],
        'retention_policy_mode = auto',
        'wal_retention_policy = main',
    ]
    return '\n'.join(lines) + '\n'


def write_if_changed(path, content, mode=0o644, check=False):
    """Atomic write; True when the content or mode differs (in check mode: would differ)."""
    try:
        with open(path) as handle:
            same = handle.read() == content
        same = same and (os.stat(path).st_mode & 0o777) == mode
    except (IOError, OSError):
        same = False
    if same or check:
        return not same
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.stackops-')
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, 'w') as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def read_passfile_password(path, role):
    try:
        with open(path) as handle:
            for line in handle:
                fields = line.rstrip('\n').split(':', 4)
                if len(fields) == 5 and fields[3] == role:
                    return fields[4].replace('\\:', ':').replace('\\\\', '\\')
    except (IOError, OSError):
        return None
    return None


def passfile_line(role, password):
    escaped = password.replace('\\', '\\\\').replace(':', '\\:')
    return '*:*:*:%s:%s\n' % (role, escaped)


def lock_held(path):
    """True when another process holds the flock on ``path`` (Barman's receive-wal lock)."""
    if not os.path.exists(path):
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (IOError, OSError) as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return True
        raise
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class Barman(object):
    """Runs the barman CLI with our configuration file."""

    def __init__(self, module, layout):
        self.module = module
        self.layout = layout
        self.bin = module.params.get('barman_bin') or module.get_bin_path(
            'barman', opt_dirs=[os.path.dirname(sys.executable)])
        if not self.bin:
            module.fail_json(msg='barman is not installed on the managed host (looked on PATH and next to %s); '
                                 'install it with `pip install barman` (requirements.txt pins it)' % sys.executable)
        # The module process is barman's parent: clean its environment once. The passfile must win, and a
        # PGPASSWORD inherited from the caller would be sent instead of it.
        for name in ('PGPASSWORD', 'PGPASSFILE', 'PGSERVICE', 'PGUSER', 'PGHOST', 'PGPORT', 'PGDATABASE'):
            os.environ.pop(name, None)
        bindir = module.params.get('pg_bindir')
        os.environ['PATH'] = os.pathsep.join(
            [p for p in (os.path.dirname(self.bin), bindir, os.environ.get('PATH', '')) if p])

    def argv(self, args, json_output=False):
        argv = [self.bin, '-c', self.layout.conf]
        if json_output:
            argv += ['-f', 'json']
        return argv + list(args)

    def run(self, args, check=True, json_output=False, detach=False):
        argv = self.argv(args, json_output)
        if detach:
            # setsid: processes barman starts in the background (receive-wal) leave ansible's session, so they
            # outlive the module, the playbook and the CLI run.
            argv = ['setsid', '--wait'] + argv
        rc, out, err = self.module.run_command(argv)
        if check and rc != 0:
            raise PitrError('barman %s failed (rc=%s) for server %s: %s; see %s' % (
                ' '.join(args[:2]), rc, self.layout.server, (err.strip() or out.strip())[-1500:], self.layout.log))
        if json_output and rc == 0:
            try:
                return rc, json.loads(out or '{}'), err
            except ValueError:
                raise PitrError('barman %s printed no JSON: %s' % (' '.join(args[:2]), out[-500:]))
        return rc, out, err


# --- catalog ----------------------------------------------------------------------------------------------------

def parse_backup_info(path):
    info = {}
    with open(path) as handle:
        for line in handle:
            if '=' in line:
                key, value = line.rstrip('\n').split('=', 1)
                info[key] = value
    return info


def parse_ts(text):
    """Barman's and PostgreSQL's timestamps ('2026-12-01 20:09:19.089295+00:00') as epoch seconds."""
    if not text or text == 'None':
        return None
    text = text.strip().replace('T', ' ')
    match = re.match(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d+)?\s*(Z|[+-]\d\d(:?\d\d)?)?$', text)
    if not match:
        raise PitrError('cannot read the time %r: use ISO 8601 with a UTC offset, e.g. 2026-12-01 14:01:59+00' % text)
    base = datetime.datetime.strptime(match.group(1), '%Y-%m-%d %H:%M:%S')
    seconds = calendar.timegm(base.timetuple()) + float(match.group(2) or 0)
    offset = match.group(3)
    if offset is None:
        raise PitrError('the time %r has no UTC offset; add one (e.g. +00) so it means one instant' % text)
    if offset != 'Z':
        sign = -1 if offset[0] == '-' else 1
        digits = offset[1:].replace(':', '')
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60)
    return seconds


def iso(epoch):
    if epoch is None:
        return None
    return datetime.datetime.utcfromtimestamp(epoch).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def lsn_int(text):
    high, low = text.split('/')
    return (int(high, 16) << 32) + int(low, 16)


def verification_record(layout, backup_id):
    path = os.path.join(layout.verified, '%s.json' % backup_id)
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


def physical_catalog(layout):
    """Base backups Barman has for the server, newest first, with stackops' verification state."""
    meta = os.path.join(layout.server_home, 'meta')
    sets = []
    if not os.path.isdir(meta):
        return sets
    for name in sorted(os.listdir(meta)):
        if not name.endswith('-backup.info'):
            continue
        info = parse_backup_info(os.path.join(meta, name))
        backup_id = info.get('backup_id') or name[:-len('-backup.info')]
        record = verification_record(layout, backup_id)
        sets.append(dict(
            id=backup_id, kind='physical', status=info.get('status'),
            begin_time=iso(parse_ts(info.get('begin_time'))), end_time=iso(parse_ts(info.get('end_time'))),
            begin_lsn=info.get('begin_xlog'), end_lsn=info.get('end_xlog'), timeline=int(info.get('timeline') or 1),
            size_bytes=int(info.get('size') or 0), compression=info.get('compression'),
            pgdata=info.get('pgdata'), version=info.get('version'), systemid=info.get('systemid'),
            path=os.path.join(layout.server_home, 'base', backup_id),
            verified=None if record is None else bool(record.get('verified')),
            verified_at=(record or {}).get('verified_at'),
        ))
    sets.sort(key=lambda entry: entry['begin_time'] or '', reverse=True)
    return sets


def dir_size(path):
    total = 0
    for root, dummy, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def wal_window(layout):
    """What WAL the archive holds: first/last segment, the newest write time, and its size on disk."""
    wals = os.path.join(layout.server_home, 'wals')
    streaming = os.path.join(layout.server_home, 'streaming')
    segments, newest = [], None
    if os.path.isdir(wals):
        for sub in os.listdir(wals):
            full = os.path.join(wals, sub)
            if os.path.isdir(full):
                for name in os.listdir(full):
                    if re.match(r'^[0-9A-F]{24}$', name):
                        segments.append(name)
                        newest = max(newest or 0, os.path.getmtime(os.path.join(full, name)))
    partial = None
    if os.path.isdir(streaming):
        for name in os.listdir(streaming):
            full = os.path.join(streaming, name)
            if re.match(r'^[0-9A-F]{24}(\.partial)?$', name):
                newest = max(newest or 0, os.path.getmtime(full))
                if name.endswith('.partial'):
                    partial = full
                else:
                    segments.append(name)
    segments.sort()
    return dict(first_segment=segments[0] if segments else None, last_segment=segments[-1] if segments else None,
                segments=len(segments), newest_write=newest, partial=partial,
                size_bytes=dir_size(wals) + dir_size(streaming))


def recovery_window(layout, now=None):
    """Earliest and latest recoverable instants: the end of the oldest complete base backup, the newest WAL."""
    sets = [entry for entry in physical_catalog(layout) if entry['status'] == 'DONE']
    wal = wal_window(layout)
    earliest = min((parse_ts(entry['end_time'].replace('Z', '+00')) for entry in sets), default=None)
    latest = wal['newest_write'] if sets else None
    return dict(earliest=earliest, latest=latest, backups=sets, wal=wal)


def choose_backup(sets, target_kind, target_value, lsn_of_target=None):
    """The newest DONE base backup that ends before the target (Barman's own rule, stated once for --check)."""
    done = [entry for entry in sets if entry['status'] == 'DONE']
    if not done:
        return None
    if target_kind == 'time':
        target = parse_ts(target_value)
        candidates = [e for e in done if parse_ts(e['end_time'].replace('Z', '+00')) <= target]
    elif target_kind == 'lsn':
        target = lsn_int(target_value)
        candidates = [e for e in done if lsn_int(e['end_lsn']) <= target]
    else:
        candidates = done
    return candidates[0] if candidates else None


# --- storage and the swap ---------------------------------------------------------------------------------------

_RENAME_EXCHANGE = 2


def exchange_dirs(first, second):
    """Swap two directories in one renameat2(RENAME_EXCHANGE) call: a crash leaves either both or neither."""
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
    renameat2 = getattr(libc, 'renameat2', None)
    if renameat2 is None:
        raise PitrError('this C library has no renameat2(); the data swap needs Linux >= 3.15 and glibc >= 2.28')
    at_fdcwd = -100
    result = renameat2(at_fdcwd, first.encode(), at_fdcwd, second.encode(), _RENAME_EXCHANGE)
    if result != 0:
        err = ctypes.get_errno()
        raise PitrError('cannot exchange %s and %s: %s' % (first, second, os.strerror(err)))


def chown_tree(path, uid, gid):
    os.lchown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def relocate_recovery_conf(data_dir, host_path, container_path):
    """Barman writes host paths into postgresql.auto.conf; the server reads them inside the container."""
    conf = os.path.join(data_dir, 'postgresql.auto.conf')
    with open(conf) as handle:
        text = handle.read()
    text = text.replace(host_path.rstrip('/') + '/', container_path.rstrip('/') + '/')
    with open(conf, 'w') as handle:
        handle.write(text)


def strip_recovery_conf(data_dir):
    """After promotion the recovery settings are history: drop them so no later start repeats them."""
    conf = os.path.join(data_dir, 'postgresql.auto.conf')
    with open(conf) as handle:
        lines = handle.readlines()
    kept = [line for line in lines if line.split('=', 1)[0].strip() not in RECOVERY_KEYS]
    with open(conf, 'w') as handle:
        handle.writelines(kept)


def load_swaps(layout):
    try:
        with open(layout.swaps) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return []


def record_swap(layout, entry):
    swaps = load_swaps(layout)
    swaps.append(entry)
    write_if_changed(layout.swaps, json.dumps(swaps, indent=2) + '\n', mode=0o600)


def utc_stamp(epoch=None):
    return time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(epoch or time.time()))


# --- docker: scratch checks and storage -------------------------------------------------------------------------

class Docker(object):
    def __init__(self, module):
        self.module = module
        self.bin = module.get_bin_path('docker', required=True)

    def run(self, args, check=True, **kwargs):
        rc, out, err = self.module.run_command([self.bin] + list(args), **kwargs)
        if check and rc != 0:
            raise PitrError('docker %s failed (rc=%s): %s' % (' '.join(args[:2]), rc, (err.strip() or out.strip())[-1500:]))
        return rc, out, err

    def volume_mountpoint(self, name):
        rc, out, dummy = self.run(['volume', 'inspect', '--format', '{{.Driver}} {{.Mountpoint}}', name], check=False)
        if rc != 0:
            return None
        driver, mountpoint = out.strip().split(' ', 1)
        if driver != 'local':
            raise PitrError('volume %s uses driver %s; recovery beside the live data needs a local volume (or a bind '
                            'mount) whose directory this host can write' % (name, driver))
        return mountpoint

    def volume_create(self, name, labels):
        args = ['volume', 'create']
        for key, value in sorted(labels.items()):
            args += ['--label', '%s=%s' % (key, value)]
        self.run(args + [name])
        return self.volume_mountpoint(name)

    def image_ids(self, image, user='postgres'):
        dummy, out, dummy2 = self.run(['run', '--rm', '--network', 'none', '--entrypoint', 'id', image, user])
        match = re.search(r'uid=(\d+).*gid=(\d+)', out)
        if not match:
            raise PitrError('cannot find user %s in image %s: %s' % (user, image, out.strip()))
        return int(match.group(1)), int(match.group(2))

    def scratch_check(self, name, image, mount, pgdata, uid, gid, user, dbname, timeout=300):
        """Start PostgreSQL on ``mount`` (volume or host dir) in a throwaway container without network, wait until it
        accepts queries out of recovery, query it, stop it cleanly. Returns what the query saw."""
        self.run(['rm', '-f', name], check=False)
        source, target = mount
        # Local trust on a socket in /tmp: the check needs no password and the container has no network at all.
        script = ('printf "local all all trust\\n" > /tmp/stackops-hba.conf && exec postgres -D "$0" '
                  '-c listen_addresses= -c unix_socket_directories=/tmp -c hba_file=/tmp/stackops-hba.conf')
        self.run(['run', '-d', '--name', name, '--network', 'none', '--user', '%d:%d' % (uid, gid),
                  '--label', 'stackops.pitr.scratch=1', '--stop-signal', 'SIGINT', '--stop-timeout', '120',
                  '-v', '%s:%s' % (source, target), '--entrypoint', 'sh', image, '-c', script, pgdata])
        try:
            deadline = time.time() + timeout
            query = ("SELECT pg_is_in_recovery(), (SELECT count(*) FROM pg_database), "
                     "pg_current_wal_lsn()::text, now()::text")
            while True:
                rc, out, dummy = self.run(['exec', name, 'psql', '-X', '-h', '/tmp', '-U', user, '-d', dbname, '-Atc',
                                           query], check=False)
                fields = out.strip().split('|')
                if rc == 0 and fields[0] == 'f':
                    break
                state = self.run(['inspect', '--format', '{{.State.Running}}', name], check=False)[1].strip()
                if state != 'true' or time.time() > deadline:
                    logs = self.run(['logs', '--tail', '25', name], check=False)
                    raise PitrError('the recovered cluster did not come up in scratch container %s (%s): %s' % (
                        name, 'exited' if state != 'true' else 'timed out after %ds' % timeout,
                        (logs[1] + logs[2]).strip()[-2000:]))
                time.sleep(0.3)
            checked = dict(databases=int(fields[1]), lsn=fields[2], at=fields[3])
            self.run(['stop', name])
            return checked
        finally:
            self.run(['rm', '-f', name], check=False)


def compose_json(module, params, args):
    from ansible_collections.stackops.runbooks.plugins.module_utils.compose import run_compose
    dummy, out, dummy2 = run_compose(module, params, args)
    return json.loads(out)


def data_mount(config, service, pgdata):
    """(kind, source, target) of the service's mount that holds ``pgdata``: a named volume or a bind mount."""
    svc = (config.get('services') or {}).get(service)
    if svc is None:
        raise PitrError('compose service %s does not exist in this project; set stackops_db_service' % service)
    best = None
    for entry in svc.get('volumes') or []:
        target = entry.get('target', '').rstrip('/') or '/'
        if pgdata == target or pgdata.startswith(target.rstrip('/') + '/'):
            if best is None or len(target) > len(best[2]):
                if entry.get('type') == 'volume':
                    key = entry.get('source')
                    name = ((config.get('volumes') or {}).get(key) or {}).get('name') or key
                    best = ('volume', name, target)
                elif entry.get('type') == 'bind':
                    best = ('bind', entry.get('source'), target)
    if best is None:
        raise PitrError('no volume or bind mount of service %s holds the data directory %s, so a recovery could '
                        'not survive the container; declare one in the compose file' % (service, pgdata))
    return best, svc.get('image')
