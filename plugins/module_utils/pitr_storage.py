# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a recovered cluster lives and how it is checked: the service's data mount and image, new storage beside
the live data, the scratch container that starts a recovered cluster, and the one-call exchange of two directories.

Used by the verification of a base backup (pitr_backup.py) and by a recovery (pitr_restore.py).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import re
import shutil
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.compose import run_compose
from ansible_collections.stackops.runbooks.plugins.module_utils.fault import fault_point
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import (
    RECOVERY_KEYS, SYNC_NAME, PitrError, write_if_changed)
from ansible_collections.stackops.runbooks.plugins.module_utils.run_journal import process_alive

SCRATCH_LABEL = 'stackops.pitr.scratch'
# Free bytes the filesystem of the live data must keep for the swap: one WAL segment, so the service can write the
# end-of-recovery checkpoint and its next segment after it starts on the recovered data.
SWAP_HEADROOM_BYTES = 16 * 1024 * 1024


class Docker(object):
    def __init__(self, module):
        self.module = module
        self.bin = module.get_bin_path('docker', required=True)

    def run(self, args, check=True, **kwargs):
        rc, out, err = self.module.run_command([self.bin] + list(args), **kwargs)
        if check and rc != 0:
            raise PitrError('docker %s failed (rc=%s): %s' % (' '.join(args[:2]), rc, (err.strip() or out.strip())[-1500:]))
        return rc, out, err

    def exists(self, kind, name):
        return self.run([kind, 'inspect', '--format', '{{.Id}}', name], check=False)[0] == 0

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

    def scratch_check(self, name, image, mount, pgdata, owner, user, dbname, timeout=300, slot=None):
        """Start PostgreSQL on ``mount`` (volume or host dir) in a throwaway container without network, wait until it
        accepts queries out of recovery, query it as ``user``, stop it cleanly. Returns what the query saw.

        With ``slot``, the promoted cluster gets that physical replication slot before it stops, reserving WAL from
        the start of its new timeline: the receiver that streams from it once the service runs on this data then
        archives the new timeline from its first segment, which a recovery from an older base backup across this
        fork needs. (A slot created later, after the service started, reserves only from then on.)"""
        self.run(['rm', '-f', name], check=False)
        source, target = mount
        # Local trust on a socket in /tmp: the check needs no password and the container has no network at all.
        # The command line wins over postgresql.conf and postgresql.auto.conf, so nothing of the service's own
        # configuration (listen_addresses, ssl files, hba rules) can keep the scratch cluster from starting.
        script = ('printf "local all all trust\\n" > /tmp/stackops-hba.conf && exec postgres -D "$0" '
                  '-c listen_addresses= -c unix_socket_directories=/tmp -c hba_file=/tmp/stackops-hba.conf')
        self.run(['run', '-d', '--name', name, '--network', 'none', '--user', '%d:%d' % owner,
                  '--label', '%s=1' % SCRATCH_LABEL, '--stop-signal', 'SIGINT', '--stop-timeout', '120',
                  '-v', '%s:%s' % (source, target), '--entrypoint', 'sh', image, '-c', script, pgdata])
        fault_point('pitr-scratch')
        try:
            # One exec that polls inside the container (every 50 ms) instead of one exec per poll: it returns as soon
            # as recovery has ended and the cluster has promoted.
            wait = ('n=0; until [ "$(psql -X -h /tmp -U "$1" -d "$2" -Atc "SELECT NOT pg_is_in_recovery()" '
                    '2>/dev/null)" = t ]; do n=$((n+1)); [ "$n" -gt "$3" ] && exit 3; sleep 0.05; done')
            rc, out, err = self.run(['exec', name, 'sh', '-c', wait, 'sh', user, dbname, str(timeout * 20)],
                                    check=False)
            if rc != 0:
                state = self.run(['inspect', '--format', '{{.State.Running}}', name], check=False)[1].strip()
                logs = self.run(['logs', '--tail', '25', name], check=False)
                raise PitrError('the recovered cluster did not come up in scratch container %s (%s): %s' % (
                    name, 'timed out after %ds' % timeout if state == 'true' else 'exited',
                    (logs[1] + logs[2]).strip()[-2000:]))
            query = "SELECT (SELECT count(*) FROM pg_database), pg_current_wal_lsn()::text, now()::text"
            dummy, out, dummy2 = self.run(['exec', name, 'psql', '-X', '-h', '/tmp', '-U', user, '-d', dbname,
                                           '-Atc', query])
            fields = out.strip().split('|')
            checked = dict(databases=int(fields[0]), lsn=fields[1], at=fields[2])
            if slot:
                # psql quotes the name (:'slot'): no SQL is built from it here. Without the right to create it (a
                # check user without REPLICATION), `pitr enable` creates the slot after the swap, as before.
                self.run(['exec', '-i', name, 'psql', '-X', '-h', '/tmp', '-U', user, '-d', dbname, '-At',
                          '-v', 'ON_ERROR_STOP=1', '-v', 'slot=%s' % slot],
                         data="SELECT pg_create_physical_replication_slot(:'slot', true) WHERE NOT EXISTS "
                              "(SELECT FROM pg_replication_slots WHERE slot_name = :'slot');\n", check=False)
            self.run(['stop', name])
            return checked
        finally:
            self.run(['rm', '-f', name], check=False)


def compose_json(module, params, args):
    dummy, out, dummy2 = run_compose(module, params, args)
    return json.loads(out)


def data_mount(config, service, pgdata):
    """(kind, source, target) of the service's mount that holds ``pgdata``: a named volume or a bind mount."""
    svc = service_config(config, service)
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
    return best


def service_config(config, service):
    svc = (config.get('services') or {}).get(service)
    if svc is None:
        raise PitrError('compose service %s does not exist in this project; set stackops_db_service' % service)
    return svc


def service_image(module, params, docker, config, service):
    """The image the database service runs. A service built by compose has no ``image:`` key: the image of its
    container is the one that runs now; without a container, the name compose gives what it builds."""
    dummy, out, dummy2 = run_compose(module, params, ['ps', '-a', '-q', service], check_rc=False)
    for container in out.split():
        rc, image, dummy = docker.run(['inspect', '--format', '{{.Image}}', container], check=False)
        if rc == 0 and image.strip():
            return image.strip()
    svc = service_config(config, service)
    image = svc.get('image') or ('%s-%s' % (config.get('name'), service) if svc.get('build') else None)
    if image is None:
        raise PitrError('compose service %s has neither an image nor a build section' % service)
    if not docker.exists('image', image):
        raise PitrError('image %s of compose service %s is not on this host and the service has no container to '
                        'take it from; run `docker compose %s %s` first' % (
                            image, service, 'build' if svc.get('build') else 'pull', service))
    return image


class Storage(object):
    """The live data directory of the database service and, once created, the new storage beside it."""

    def __init__(self, docker, config, service, pgdata):
        self.docker = docker
        self.kind, self.live, self.mount_target = data_mount(config, service, pgdata)
        self.pgdata = pgdata
        self.subpath = os.path.relpath(pgdata, self.mount_target)
        self.new = self.new_root = self.dest = self.owner_ids = None

    def root_of(self, name):
        """The host directory of a volume or bind mount (None when it does not exist)."""
        if self.kind == 'volume':
            return self.docker.volume_mountpoint(name)
        return name if os.path.isdir(name) else None

    def data_dir(self, root):
        return root if self.subpath == '.' else os.path.join(root, self.subpath)

    @property
    def live_dir(self):
        root = self.root_of(self.live)
        return self.data_dir(root) if root else None

    def owner(self, image):
        """uid and gid the server runs as: the live data's owner, else the image's postgres user."""
        live_dir = self.live_dir
        if live_dir and os.path.isdir(live_dir):
            stat = os.stat(live_dir)
            self.owner_ids = (stat.st_uid, stat.st_gid)
        else:
            self.owner_ids = self.docker.image_ids(image)
        return self.owner_ids

    def new_name(self, stamp):
        if self.kind == 'volume':
            return '%s-pitr-%s' % (self.live, stamp.lower())
        return '%s.pitr-%s' % (self.live.rstrip('/'), stamp.lower())

    def create(self, name, labels):
        self.new = name
        if self.kind == 'volume':
            self.new_root = self.docker.volume_create(name, labels)
        else:
            os.makedirs(name, 0o700)
            self.new_root = name
        self.dest = self.data_dir(self.new_root)
        return self.dest

    def remove(self, name=None):
        name = name or self.new
        if self.kind == 'volume':
            self.docker.run(['volume', 'rm', '-f', name], check=False)
        else:
            shutil.rmtree(name, ignore_errors=True)

    def check_exchange(self, live_dir):
        """Refuse, before the service is stopped, an exchange that cannot work: the two directories on different
        filesystems (EXDEV), either one a mount point (EBUSY), or too little room on the live data's filesystem."""
        for path in (self.dest, live_dir):
            if os.path.ismount(path):
                raise PitrError('%s is a mount point of its own, so it cannot be exchanged with one rename; mount '
                                'its parent directory into the service instead (the data directory below it), and '
                                'recover again; nothing was stopped' % path)
        if os.stat(self.dest).st_dev != os.stat(live_dir).st_dev:
            raise PitrError('the recovered data %s and the live data %s are on different filesystems, so they cannot '
                            'be exchanged with one rename; nothing was stopped' % (self.dest, live_dir))
        stat = os.statvfs(live_dir)
        free = stat.f_bavail * stat.f_frsize
        if free < SWAP_HEADROOM_BYTES:
            raise PitrError('only %d bytes are free on the filesystem of %s; the service needs at least %d after the '
                            'swap; free space there and recover again; nothing was stopped' % (
                                free, live_dir, SWAP_HEADROOM_BYTES))


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
        raise OSError(err, 'cannot exchange %s and %s: %s' % (first, second, os.strerror(err)))


def chown_tree(path, uid, gid):
    os.lchown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def _rewrite_auto_conf(data_dir, keep):
    conf = os.path.join(data_dir, 'postgresql.auto.conf')
    with open(conf) as handle:
        lines = handle.readlines()
    kept = [line for line in lines if keep(line)]
    if kept != lines:
        with open(conf, 'w') as handle:
            handle.writelines(kept)


def relocate_recovery_conf(data_dir, host_path, container_path):
    """Barman writes host paths into postgresql.auto.conf; the server reads them inside the container."""
    conf = os.path.join(data_dir, 'postgresql.auto.conf')
    with open(conf) as handle:
        text = handle.read()
    text = text.replace(host_path.rstrip('/') + '/', container_path.rstrip('/') + '/')
    with open(conf, 'w') as handle:
        handle.write(text)


def drop_sync_receiver(data_dir):
    """A recovered cluster starts without its receiver: a synchronous_standby_names naming it would make every
    commit wait. `pitr enable` sets it again once the receiver streams."""
    ours = ("synchronous_standby_names = '%s'" % SYNC_NAME, "synchronous_standby_names = '\"%s\"'" % SYNC_NAME)
    _rewrite_auto_conf(data_dir, lambda line: line.strip() not in ours)


def finish_recovered(data_dir):
    """After promotion the recovery settings and the WAL Barman staged for them are history: a later start must not
    repeat them, and barman_wal/ must not ride along in every later base backup of this data directory."""
    _rewrite_auto_conf(data_dir, lambda line: line.split('=', 1)[0].strip() not in RECOVERY_KEYS)
    shutil.rmtree(os.path.join(data_dir, 'barman_wal'), ignore_errors=True)


class Journal(object):
    """A file naming what a run is about to create, written before it creates it, and a lock held while it runs.

    The kernel drops the lock with the process, so a run killed with SIGKILL never leaves it stuck; the next run
    takes it, reads the journal and removes what the killed run left."""

    def __init__(self, root, name, what):
        self.path = os.path.join(root, '%s.json' % name)
        self.lock_path = os.path.join(root, '%s.lock' % name)
        self.what = what
        self.fd = None

    def lock(self, server):
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError) as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise PitrError('another %s of %s is running (it holds %s); wait for it to finish' % (
                    self.what, server, self.lock_path))
            raise
        self.fd = fd

    def read(self):
        try:
            with open(self.path) as handle:
                return json.load(handle)
        except (IOError, OSError, ValueError):
            return None

    def write(self, **entry):
        entry.setdefault('pid', os.getpid())
        entry.setdefault('started', time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
        write_if_changed(self.path, json.dumps(entry, indent=2, sort_keys=True) + '\n', mode=0o600)

    def drop(self):
        if os.path.exists(self.path):
            os.unlink(self.path)


def remove_scratch_container(docker, name, check, why):
    """The scratch container ``name`` of a killed run, if it is still there (it may still run on the scratch data)."""
    if not docker.exists('container', name):
        return []
    if not check:
        docker.run(['rm', '-f', name])
    return ['remove scratch container %s %s' % (name, why)]


def remove_dead_staging(layout, check=False):
    """Barman names its staging copies after its pid (barman-decompress<pid>): a dead pid's copy is what a killed
    run left. Removes them (in check mode: says so); returns what was done, as text."""
    staging = layout.staging
    done = []
    for name in sorted(os.listdir(staging)) if os.path.isdir(staging) else []:
        match = re.match(r'^barman-[a-z-]+?(\d+)$', name)
        if match and not process_alive(int(match.group(1))):
            done.append('remove Barman staging copy %s of a killed run' % os.path.join(staging, name))
            if not check:
                shutil.rmtree(os.path.join(staging, name), ignore_errors=True)
    return done
