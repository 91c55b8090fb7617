# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-database locks in the backup directory: one backup, verify, restore or retention of a database at a time."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import json
import os
import socket
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import LOCK_DIR, BackupError, isoformat, slug, utcnow
from ansible_collections.stackops.runbooks.plugins.module_utils.fault import fault_point


class LockTimeout(BackupError):
    pass


class DatabaseLock(object):
    """flock on ``<backup_dir>/.locks/<db>.lock``: backups, verifies, restores and retention of one database
    run one at a time. The holder writes who it is into the file so a waiter can name it."""

    def __init__(self, backup_dir, database, operation, timeout):
        self.path = os.path.join(backup_dir, LOCK_DIR, slug(database) + '.lock')
        self.database = database
        self.operation = operation
        self.timeout = timeout
        self.handle = None

    def holder(self):
        try:
            with open(self.path) as handle:
                info = json.loads(handle.read() or '{}')
        except (IOError, OSError, ValueError):
            return 'an unknown process'
        return '%s (pid %s on %s, since %s)' % (
            info.get('operation', '?'), info.get('pid', '?'), info.get('host', '?'), info.get('since', '?'))

    def try_acquire(self):
        self.handle = open(self.path, 'a+')
        try:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError):
            self.handle.close()
            self.handle = None
            return False
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(json.dumps(dict(operation=self.operation, pid=os.getpid(), host=socket.gethostname(),
                                          since=isoformat(utcnow()), database=self.database)))
        self.handle.flush()
        return True

    def acquire(self):
        deadline = time.monotonic() + max(self.timeout, 0)
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    'database %r is locked by %s; %s waited %ss for lock file %s. Wait for it to finish or raise '
                    'lock_timeout; if no such process exists, the lock is released automatically' % (
                        self.database, self.holder(), self.operation, self.timeout, self.path))
            fault_point('lock-wait')
            time.sleep(0.2)
        return self

    def release(self):
        if self.handle:
            # Empty the holder record before unlocking so a waiter never names a finished holder.
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.flush()
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None

    def is_held_elsewhere(self):
        if not os.path.exists(self.path):
            return False
        if self.try_acquire():
            self.release()
            return False
        return True

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class LockSet(object):
    """Several database locks taken in name order, so two operations can never deadlock."""

    def __init__(self, backup_dir, databases, operation, timeout):
        self.locks = [DatabaseLock(backup_dir, name, operation, timeout) for name in sorted(set(databases))]

    def __enter__(self):
        taken = []
        try:
            for lock in self.locks:
                taken.append(lock.acquire())
        except Exception:
            for lock in taken:
                lock.release()
            raise
        return self

    def __exit__(self, *exc):
        for lock in reversed(self.locks):
            lock.release()
