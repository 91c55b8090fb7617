"""One procedure at a time per stack: an flock()ed file per (inventory, limit) under the state dir.

flock() locks die with the process, so a crashed run never leaves a stale lock behind;
the holder's details are written into the locked file for whoever is turned away.
"""
import fcntl
import hashlib
import json
import os
import re
import time
from pathlib import Path


class LockHeld(Exception):
    def __init__(self, holder, path):
        self.holder = holder or {}
        self.path = path
        super().__init__(describe_holder(self.holder))


def describe_holder(holder):
    if not holder:
        return "another stackops run (details not yet written)"
    return "%s (pid %s, run %s, started %s)" % (holder.get("procedure", "?"), holder.get("pid", "?"),
                                                holder.get("run_id", "?"), holder.get("started", "?"))


def stack_key(inventory, limit):
    identity = "%s|%s" % (os.path.realpath(str(inventory)), limit or "all")
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", "%s-%s" % (Path(str(inventory)).name, limit or "all"))[:60]
    return "%s-%s" % (readable, hashlib.sha256(identity.encode()).hexdigest()[:12])


class StackLock:
    def __init__(self, state_dir, inventory, limit):
        self.dir = Path(state_dir) / "locks"
        self.path = self.dir / (stack_key(inventory, limit) + ".lock")
        self._fd = None

    def read_holder(self):
        try:
            text = self.path.read_text()
            return json.loads(text) if text.strip() else {}
        except (OSError, json.JSONDecodeError):
            return {}

    def acquire(self, holder, wait=False, timeout=None, on_wait=None):
        """Take the lock or raise LockHeld; with wait, block (up to timeout seconds) until it is free."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = None if timeout is None else time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                current = self._holder_with_retry()
                if not wait or (deadline is not None and time.monotonic() >= deadline):
                    os.close(fd)
                    raise LockHeld(current, self.path) from None
                if on_wait and not announced:
                    on_wait(current)
                    announced = True
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder, default=str).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def _holder_with_retry(self):
        # The holder writes its details right after locking; give it a moment.
        for _ in range(5):
            holder = self.read_holder()
            if holder:
                return holder
            time.sleep(0.1)
        return {}

    def release(self):
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
