# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""External programs of a backup: compressors, tool versions, a pipeline streamed into a file, and a file fed
into a program while it is hashed."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import re
import subprocess
import tempfile

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError, describe_os_error
from ansible_collections.stackops.runbooks.plugins.module_utils.pipeline import CHUNK, Pipeline, widen_pipe


# pg_dump before 16 compresses custom/directory output with zlib only.
NATIVE_METHODS_BY_MAJOR = {15: ('gzip', 'none')}
DEFAULT_LEVELS = {'zstd': 3, 'gzip': 4, 'lz4': 1, 'none': 0}
EXTENSIONS = {'zstd': '.zst', 'gzip': '.gz', 'lz4': '.lz4', 'none': ''}


def stream_to_file(stages, env, target, digest=None):
    """Run ``stages`` (argv lists) as a pipeline and copy the last stdout into ``target``.

    We copy in Python rather than redirect so the sha256 is computed while writing and a
    full disk surfaces as an OSError we can name. Returns (bytes written, [(argv, rc, stderr)]).
    """
    pipeline = Pipeline(stages, env)
    written = 0
    write_error = None
    try:
        with open(target, 'wb') as out:
            for chunk in iter(lambda: pipeline.stdout.read(CHUNK), b''):
                out.write(chunk)
                if digest is not None:
                    digest.update(chunk)
                written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    except (IOError, OSError) as exc:
        write_error = exc
        pipeline.kill()
    finally:
        results = pipeline.wait()
    if write_error is not None:
        raise BackupError(describe_os_error(write_error, target))
    return written, results


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
