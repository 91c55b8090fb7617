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
# Barman's streaming_archiver_name default: the application_name its pg_receivewal connects with.
SYNC_NAME = 'barman_receive_wal'
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


def scratch_check_argument_spec(**options):
    """The whole argument spec of a module that starts a recovered cluster in a scratch container and queries it
    (pg_pitr_backup, pg_pitr_restore): its own ``options``, the scratch check's, the compose project's and the
    catalog's. Documented by the doc fragments pitr.scratch_check, compose and pitr."""
    from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_argument_spec
    spec = dict(options)
    spec.update(
        # No default service: the name is the stack's (stackops_db_service). The role and database default like
        # login_user and login_db, to the official image's postgres (docs/inventory.md).
        compose_service=dict(type='str', required=True),
        check_user=dict(type='str', default='postgres'),
        check_db=dict(type='str', default='postgres'),
    )
    spec.update(compose_argument_spec())
    spec.update(pitr_argument_spec())
    return spec


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


def barman_conninfo(layout):
    """The connection string and the slot of the server, as pg_pitr wrote them into Barman's configuration."""
    values = {}
    with open(layout.server_conf) as handle:
        for line in handle:
            key, sep, value = line.partition('=')
            if sep:
                values[key.strip()] = value.strip()
    return values.get('conninfo'), values.get('slot_name')


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
    ]
    if params['compression'] == 'zstd':
        # Single-threaded server-side zstd is what bounds a base backup (benchmarks/README.md: about 1.7x faster
        # with two workers on 2 CPUs). PostgreSQL 15 runs the workers as threads of the walsender; two at most, so
        # a backup never takes more than two CPUs from the database host.
        lines.append('backup_compression_workers = %d' % min(2, os.cpu_count() or 1))
    lines += [
        'staging_path = %s' % layout.staging,
        'staging_location = local',
        # No retention_policy: `barman cron` (every minute) would then delete base backups by age alone, the last
        # verified one included. stackops applies the policy itself, after a verification (retention_plan()).
        'minimum_redundancy = %d' % params['minimum_backups'],
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


# How long a live server's receiver may take to hold the WAL written before a run. It streams, so this is normally
# milliseconds; the bound matters only when the receiver is down and `barman cron` has to start it again.
WAL_CATCH_UP_SECONDS = 60


def primary_connection(layout):
    """Barman's replication connection to the primary (autocommit), or None when the server cannot be reached."""
    # Imported here: the readers of PITR's files (stack_status_info, the drill, the off-site copies) never need a
    # connection, and psycopg costs ~0.15 s of every such module run. Missing, it is reported by module_utils/pg.py.
    import psycopg
    dsn, dummy = barman_conninfo(layout)
    try:
        return psycopg.connect(dsn, connect_timeout=5, autocommit=True, application_name='stackops-pitr')
    except psycopg.Error:
        return None


def close_wal_segment(module, layout, required):
    """Make every commit made before now reach the archive's receiver, without waiting on WAL already streamed.

    With the server alive: write a WAL record (an xid's commit, so the segment is never empty), close the segment
    (pg_switch_wal) and wait until the receiver has that segment complete, which it streams, so that is at once
    (its flush position is only reported every few seconds: the file is what counts), and has started the next one,
    so `barman archive-wal` can archive it. Returns the server's time then. With the server unreachable: None (the
    receiver's .partial is all there is). When the receiver does not have it within WAL_CATCH_UP_SECONDS, raises if
    ``required``, else returns None."""
    conn = primary_connection(layout)
    if conn is None:
        return None
    with conn:
        conn.execute('SELECT pg_current_xact_id()')
        at, segment = conn.execute('SELECT extract(epoch FROM clock_timestamp())::float8, '
                                   'pg_walfile_name(pg_switch_wal())').fetchone()
        # A record in the next segment too: the receiver starts that segment's .partial only when WAL arrives for
        # it, and Barman archives a completed segment only once a later file exists (it always leaves the newest
        # one for pg_receivewal to resume from). Without it an idle server's segment waits for the next write.
        conn.execute('SELECT pg_current_xact_id()')
    streaming = os.path.join(layout.server_home, 'streaming')
    archived = os.path.join(layout.server_home, 'wals', segment[:16], segment)
    deadline = time.time() + WAL_CATCH_UP_SECONDS
    restarted = False
    while not (os.path.exists(archived) or segment_followed(streaming, segment)):
        if not restarted and not lock_held(layout.receiver_lock()):
            # The receiver is down: `barman cron` starts it, and the slot kept the WAL for it.
            Barman(module, layout).run(['cron'], detach=True, check=False)
            restarted = True
        if time.time() > deadline:
            if not required:
                return None
            raise PitrError('the WAL receiver of %s did not get WAL segment %s within %d s; see `stackops pitr '
                            'status` and %s; nothing was changed' % (layout.server, segment, WAL_CATCH_UP_SECONDS,
                                                                     layout.log))
        time.sleep(0.02)
    return at


def segment_followed(streaming, segment):
    """The receiver has ``segment`` complete and has started a later one."""
    try:
        names = os.listdir(streaming)
    except OSError:
        return False
    return segment in names and any(name > segment for name in names if name.endswith('.partial'))


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


def record_verification(layout, backup_id, record):
    """Written for a passed verification and for a failed one alike: a backup that failed must never look like one
    that was never verified (choose_backup() skips it)."""
    record = dict(record, backup_id=backup_id, verified_at=iso(time.time()))
    write_if_changed(os.path.join(layout.verified, '%s.json' % backup_id), json.dumps(record, indent=2) + '\n',
                     mode=0o644)
    return record


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
        ended = parse_ts(info.get('end_time'))
        sets.append(dict(
            id=backup_id, kind='physical', status=info.get('status'),
            begin_time=iso(parse_ts(info.get('begin_time'))), end_time=iso(parse_ts(info.get('end_time'))),
            begin_lsn=info.get('begin_xlog'), end_lsn=info.get('end_xlog'), timeline=int(info.get('timeline') or 1),
            begin_wal=info.get('begin_wal'),
            size_bytes=int(info.get('size') or 0), compression=info.get('compression'),
            pgdata=info.get('pgdata'), version=info.get('version'), systemid=info.get('systemid'),
            path=os.path.join(layout.server_home, 'base', backup_id),
            verified=None if record is None else bool(record.get('verified')),
            verified_at=(record or {}).get('verified_at'),
            verification_failed=record is not None and not record.get('verified'),
            verification_error=(record or {}).get('error'),
            # The set is consistent as of its end: that is the age an RPO judgement compares.
            age_seconds=None if ended is None else int(time.time() - ended),
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
    """Earliest and latest recoverable instants (the end of the oldest usable base backup, the newest WAL) and the
    complete base backups, newest first (those that failed verification too, marked so)."""
    sets = [entry for entry in physical_catalog(layout) if entry['status'] == 'DONE']
    wal = wal_window(layout)
    usable = usable_backups(sets)
    earliest = min((ended(entry) for entry in usable), default=None)
    latest = wal['newest_write'] if usable else None
    return dict(earliest=earliest, latest=latest, backups=sets, wal=wal)


WAL_SEGMENT_BYTES = 16 * 1024 * 1024


def archive_disk(layout, segment_bytes=WAL_SEGMENT_BYTES):
    """Free space where the receiver writes. pg_receivewal preallocates each segment in full before it writes a
    byte of it, so less than one segment free stops the receiver at the next segment boundary."""
    path = layout.server_home
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    stat = os.statvfs(path)
    free = stat.f_bavail * stat.f_frsize
    return dict(path=path, free_bytes=free, total_bytes=stat.f_blocks * stat.f_frsize,
                segment_bytes=segment_bytes, full=free < segment_bytes)


def receiver_error(layout, tail_bytes=262144):
    """The error the last receive-wal of this server logged (pg_receivewal's own words first), or None."""
    try:
        with open(layout.log, 'rb') as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - tail_bytes))
            lines = handle.read().decode('utf-8', 'replace').splitlines()
    except (IOError, OSError):
        return None
    started = 'Starting receive-wal for server %s' % layout.server
    last_start = max((i for i, line in enumerate(lines) if started in line), default=None)
    if last_start is None:
        return None
    pid = re.search(r'\[(\d+)\]', lines[last_start])
    own = [line for line in lines[last_start:] if pid is None or '[%s]' % pid.group(1) in line]
    errors = [line for line in own if 'pg_receivewal: error:' in line and 'disconnected' not in line]
    errors = errors or [line for line in own if ' ERROR: ' in line]
    if not errors:
        return None
    text = re.sub(r'^\S+ \S+ \[\d+\] \S+ (INFO|ERROR): ', '', errors[0]).strip()
    return text[len(layout.server) + 2:] if text.startswith(layout.server + ': ') else text


def receiver_problems(layout, alive, disk, error=None, retained_bytes=None, synchronous=False):
    """What is wrong with the WAL stream, each with what to do next (for `pitr status` and `pitr enable`)."""
    problems = []
    if synchronous and alive is False:
        problems.append(
            'commits are waiting: synchronous receiving is on (synchronous_standby_names = %s) and the WAL receiver '
            'is down; restart it now with `stackops pitr enable`, or stop waiting with `stackops pitr enable -e '
            'stackops_pitr_synchronous=false`' % SYNC_NAME)
    kept = ('the slot keeps the WAL on the server meanwhile (%s bytes so far, in the database\'s pg_wal: watch '
            'that disk)' % retained_bytes) if retained_bytes is not None else 'the slot keeps the WAL on the server'
    if disk['full']:
        problems.append(
            'the WAL archive disk at %s is full: %d bytes free, less than one %d-byte WAL segment, so the receiver '
            'cannot start its next segment; free space there (or move stackops_pitr_dir to a bigger disk), then run '
            '`stackops pitr enable` to restart the receiver; %s and the receiver catches up from it'
            % (disk['path'], disk['free_bytes'], disk['segment_bytes'], kept))
    if alive is False and not disk['full']:
        problems.append(
            'the WAL receiver of %s is not running%s; restart it with `stackops pitr enable` (or wait for the '
            'stackops_pitr_cron_file entry, which runs `barman cron` every minute); %s, so no WAL is lost; if it does '
            'not stay up see %s' % (layout.server, ' (last error: %s)' % error if error else '', kept, layout.log))
    elif alive is False and error:
        problems.append('the WAL receiver of %s stopped: %s' % (layout.server, error))
    return problems


def check_target_value(kind, value):
    """Refuse a recovery target value that is missing or malformed before anything is read or touched."""
    if kind != 'latest' and not value:
        raise PitrError('target %s needs target_value' % kind)
    if kind == 'time':
        parse_ts(value)
    elif kind == 'lsn':
        try:
            lsn_int(value)
        except ValueError:
            raise PitrError('%r is not an LSN; write it as PostgreSQL prints it, e.g. 0/5A0003B8' % value)


def load_marks(layout):
    """Restore points recorded by pg_restore_point in marks.json: {name: {lsn, time}}; {} when there are none."""
    try:
        with open(os.path.join(layout.root, 'marks.json')) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return {}


def usable_backups(sets):
    """Complete base backups a recovery may start from, newest first: never one whose verification failed."""
    return [entry for entry in sets if entry['status'] == 'DONE' and not entry.get('verification_failed')]


def ended(entry):
    return parse_ts(entry['end_time'].replace('Z', '+00'))


def choose_backup(sets, target_kind, target_value, lsn_of_target=None):
    """The base backup a recovery to the target starts from: among the complete ones that end before the target and
    did not fail verification, the newest verified one, else (none verified) the newest one."""
    done = usable_backups(sets)
    if target_kind == 'time':
        target = parse_ts(target_value)
        candidates = [e for e in done if ended(e) <= target]
    elif target_kind == 'lsn':
        target = lsn_int(target_value)
        candidates = [e for e in done if lsn_int(e['end_lsn']) <= target]
    else:
        candidates = done
    verified = [e for e in candidates if e.get('verified')]
    return (verified or candidates or [None])[0]


def retention_plan(sets, window_days, minimum, now=None):
    """Ids of the base backups retention deletes, oldest first (so Barman drops the WAL before the next one).

    Kept: every backup that ends inside the recovery window; the newest usable one that ends before it (a recovery
    to the start of the window starts there); the ``minimum`` newest usable ones; and always the newest verified
    one, whatever its age. Barman's own retention (by age alone) could delete that last one."""
    start = (now or time.time()) - window_days * 86400
    done = [entry for entry in sets if entry['status'] == 'DONE']
    usable = usable_backups(done)
    keep = set(entry['id'] for entry in usable[:max(minimum, 0)])
    keep.update(entry['id'] for entry in done if ended(entry) >= start)
    keep.update(entry['id'] for entry in [e for e in usable if ended(e) < start][:1])
    keep.update(entry['id'] for entry in [e for e in usable if e.get('verified')][:1])
    return [entry['id'] for entry in reversed(done) if entry['id'] not in keep]


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
