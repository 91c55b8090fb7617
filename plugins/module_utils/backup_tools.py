# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""External programs of a backup: compressors, tool versions, a pipeline streamed into a file, and a file fed
into a program while it is hashed."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ctypes
import hashlib
import os
import re
import subprocess
import tempfile

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError, describe_os_error
from ansible_collections.stackops.runbooks.plugins.module_utils.pipeline import (
    CHUNK, Pipeline, describe_rc, first_failure, widen_pipe)


# pg_dump before 16 compresses custom/directory output with zlib only.
NATIVE_METHODS_BY_MAJOR = {15: ('gzip', 'none')}
DEFAULT_LEVELS = {'zstd': 3, 'gzip': 4, 'lz4': 1, 'none': 0}
EXTENSIONS = {'zstd': '.zst', 'gzip': '.gz', 'lz4': '.lz4', 'none': ''}


def stream_to_file(stages, env, target, digest=None, feed=None):
    """Run ``stages`` (argv lists) as a pipeline and copy the last stdout into ``target``, fsynced.

    We copy in Python rather than redirect so the sha256 is computed while writing and a full disk surfaces as an
    OSError we can name. ``feed`` (a GrowingFile of ``target``: the trial restore of a verified backup reads the file
    while it is written) learns every byte written, and the end once the file holds them all, before the fsync, so
    its reader goes on meanwhile. Returns (bytes written, [(argv, rc, stderr)]).
    """
    pipeline = Pipeline(stages, env)
    written = 0
    results = None
    try:
        with open(target, 'wb') as out:
            flusher = Writeback(out.fileno())
            for chunk in iter(lambda: pipeline.stdout.read(CHUNK), b''):
                out.write(chunk)
                if digest is not None:
                    digest.update(chunk)
                written += len(chunk)
                if feed is not None:
                    out.flush()
                    feed.wrote(written)
                flusher.written(written, out)
            out.flush()
            results = pipeline.wait()
            if feed is not None:
                failure = first_failure(results)
                feed.end(failure and '%s %s' % (os.path.basename(failure[0][0]), describe_rc(failure[1])))
            os.fsync(out.fileno())
    except BaseException as exc:
        pipeline.kill()
        if results is None:
            results = pipeline.wait()
        if feed is not None and not feed.ended:
            feed.end(exc)
        if isinstance(exc, (IOError, OSError)):
            raise BackupError(describe_os_error(exc, target))
        raise
    return written, results


SYNC_FILE_RANGE_WRITE = 2
WRITEBACK_EVERY = 32 * CHUNK


class Writeback(object):
    """Starts the disk writes of a file being streamed every WRITEBACK_EVERY bytes (sync_file_range, which does not
    wait for them), so the fsync that makes the backup durable finds little left to write: without it the whole
    file sits dirty in the page cache until that fsync, and the backup waits for all of it at the end."""

    def __init__(self, fd):
        self.fd = fd
        self.started = 0
        try:
            self.call = ctypes.CDLL(None, use_errno=True).sync_file_range
            self.call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        except (OSError, AttributeError):
            self.call = None  # not Linux/glibc: the final fsync does all of it, as it would anyway

    def written(self, offset, handle):
        if self.call is None or offset - self.started < WRITEBACK_EVERY:
            return
        handle.flush()
        self.call(self.fd, self.started, offset - self.started, SYNC_FILE_RANGE_WRITE)
        self.started = offset


def feed_hashed(argv, source, stdout=subprocess.DEVNULL):
    """Run ``argv`` with the file ``source`` as its stdin, hashing the bytes while they are fed.

    The bytes the program consumed are exactly the bytes hashed, so the caller can compare the digest with a
    manifest without a second read. When the program dies early the rest of the file is still hashed, so a damaged
    file is named by its checksum rather than by the program's complaint. Returns (sha256 hex, rc, stderr text);
    an unreadable ``source`` raises IOError/OSError.
    """
    digest = hashlib.sha256()
    err = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=stdout, stderr=err, close_fds=True)
        widen_pipe(proc.stdin)
        feeding = True
        try:
            with open(source, 'rb') as handle:
                for chunk in iter(lambda: handle.read(CHUNK), b''):
                    digest.update(chunk)
                    if feeding:
                        try:
                            proc.stdin.write(chunk)
                        except (IOError, OSError):
                            feeding = False
        finally:
            try:
                proc.stdin.close()  # EOF for the program, also when reading failed
            except (IOError, OSError):
                pass
            rc = proc.wait()
        err.seek(0)
        detail = err.read().decode('utf-8', 'replace').strip()
    finally:
        err.close()
    return digest.hexdigest(), rc, detail


def compressor_argv(module, method, level, decompress=False):
    """Host-side (de)compressor argv; pigz and zstd -T0 use every core because compression is the bottleneck."""
    if method == 'zstd':
        tool = module.get_bin_path('zstd')
        argv = [tool, '-d', '-q', '-c'] if decompress else [tool, '-q', '-c', '-T0', '-%d' % level]
    elif method == 'lz4':
        tool = module.get_bin_path('lz4')
        argv = [tool, '-d', '-q', '-c'] if decompress else [tool, '-q', '-c', '-%d' % level]
    elif method == 'gzip':
        tool = module.get_bin_path('pigz') or module.get_bin_path('gzip')
        argv = [tool, '-d', '-c'] if decompress else [tool, '-c', '-%d' % level]
    else:
        return None
    if not tool:
        raise BackupError('%s is not installed on the host; install it (apt-get install %s) or choose another '
                          'compression' % (method, 'pigz' if method == 'gzip' else method))
    return argv


def tool_version(module, argv, env=None):
    rc, out, err = module.run_command(argv, environ_update=env or {})
    if rc != 0:
        return None
    return (out or err).strip().splitlines()[0] if (out or err).strip() else None


def pg_major(version_text):
    match = re.search(r'(\d+)(?:\.(\d+))?', version_text or '')
    return int(match.group(1)) if match else None
