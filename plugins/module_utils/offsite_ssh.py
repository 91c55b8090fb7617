# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SSH target: offsite_target.OffsiteTarget on one directory of a host reached over SSH.

The system ``ssh`` in batch mode (no password prompts; a key file or an agent) and ``rsync --partial`` on both ends
(an interrupted transfer resumes); the remote side needs a POSIX shell, coreutils (``sha256sum``, ``wc``) and rsync.
Host keys are checked against ``known_hosts_file`` (or the user's known_hosts) unless ``strict_host_key_checking`` is
off. The size and sha256 of remote files are computed on the remote host, so every check is deep; documents are
written beside their name and renamed, so they are whole or absent. Whole trees go in one rsync (``batches``).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os
import posixpath
import re
import shlex

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import sha256_file
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import MARKER, OffsiteError, check_digest
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_target import OffsiteTarget, compare

RECORD = '\n\x1e\n'
PARTIAL_DIR = '.rsync-partial'

# Every directory below "$1": "C <name>" and the document "$2" in it, or "U <name>" (no such document).
CHILDREN_SCRIPT = r'''
cd -- "$1" 2>/dev/null || exit 0
for d in *; do
  [ -d "$d" ] || continue
  if [ -f "$d/$2" ]; then printf 'C %s\n' "$d"; cat -- "$d/$2"
  else printf 'U %s\n' "$d"; fi
  printf '\n\036\n'
done
'''

# One line per file argument, in order: "<size> <sha256>" or "missing".
DIGEST_SCRIPT = r'''
cd -- "$1" || exit 3
shift
for f; do
  if [ -f "$f" ]; then
    s=$(wc -c < "$f") && h=$(sha256sum < "$f") || exit 4
    printf '%s %s\n' $s "${h%% *}"
  else
    echo missing
  fi
done
'''

# The document arrives on stdin: written beside its final name, synced, then renamed, so it is whole or absent.
DOCUMENT_SCRIPT = r'''
d=$(dirname -- "$1") && mkdir -p -- "$d" && chmod 700 -- "$d" || exit 3
cat > "$1.tmp" && sync "$1.tmp" 2>/dev/null; mv -f -- "$1.tmp" "$1"
'''

READ_SCRIPT = r'''
[ -f "$1" ] || exit 0
printf 'Y'; cat -- "$1"
'''

# "$2" (the marker) first: the copy stops counting at once, whatever happens to the rest.
DELETE_SCRIPT = r'''
cd -- "$1" 2>/dev/null || exit 0
m=$2
shift 2
for d; do rm -f -- "$d/$m" && rm -rf -- "$d" || exit 5; done
'''


class SshTarget(OffsiteTarget):
    """One copy root on one SSH host; every remote step is one ssh (or rsync) call."""

    type = 'ssh'
    batches = True

    def __init__(self, module, params):
        self.module = module
        self.host = params['host']
        self.port = params.get('port') or 22
        self.user = params.get('user')
        self.root = params['path'].rstrip('/') or '/'
        if not self.root.startswith('/'):
            raise OffsiteError('path %r of ssh target %s must be absolute' % (params['path'], self.host))
        self.destination = ('%s@%s' % (self.user, self.host)) if self.user else self.host
        self.label = 'ssh://%s:%d%s' % (self.destination, self.port, self.root)
        self.name = params.get('target_name') or self.label
        argv = [module.get_bin_path('ssh', required=True), '-p', str(self.port), '-o', 'BatchMode=yes',
                '-o', 'ConnectTimeout=%d' % (params.get('connect_timeout') or 10),
                '-o', 'StrictHostKeyChecking=%s' % ('yes' if params.get('strict_host_key_checking', True) else 'no')]
        if params.get('known_hosts_file'):
            argv += ['-o', 'UserKnownHostsFile=%s' % params['known_hosts_file']]
        if params.get('identity_file'):
            argv += ['-i', params['identity_file'], '-o', 'IdentitiesOnly=yes']
        for option in params.get('ssh_options') or []:
            argv += ['-o', option]
        self.ssh_argv = argv
        self.bin_rsync = module.get_bin_path('rsync', required=True)

    def where(self, key):
        return posixpath.join(self.root, key)

    def url(self, key):
        return 'ssh://%s:%d%s' % (self.destination, self.port, self.where(key))

    def fail(self, action, rc, err):
        lines = [line for line in (err or '').strip().splitlines() if line.strip()]
        detail = lines[-1] if lines else 'exit code %d' % rc
        if rc == 255:
            return OffsiteError('cannot reach ssh target %s while %s: %s; check host, port, user, identity_file and '
                                'known_hosts_file (ssh runs in batch mode: no password prompts)' % (
                                    self.label, action, detail))
        return OffsiteError('%s on ssh target %s failed: %s' % (action, self.label, detail))

    def run(self, action, script, args, data=None):
        remote = ' '.join(['sh', '-c', shlex.quote(script), 'sh'] + [shlex.quote(arg) for arg in args])
        rc, out, err = self.module.run_command(self.ssh_argv + ['--', self.destination, remote], data=data,
                                               binary_data=True, environ_update=dict(LC_ALL='C'))
        if rc != 0:
            raise self.fail(action, rc, err)
        return out

    def rsync(self, action, files, source, dest, throttle=None):
        argv = [self.bin_rsync, '-rt', '--partial', '--partial-dir=%s' % PARTIAL_DIR, '--chmod=D0700,F0600',
                '--from0', '--files-from=-', '-e', ' '.join(shlex.quote(arg) for arg in self.ssh_argv)]
        if throttle is not None and throttle.mib:
            argv.append('--bwlimit=%dk' % (throttle.mib * 1024))
        rc, out, err = self.module.run_command(argv + ['--', source, dest], data='\0'.join(files), binary_data=True,
                                               environ_update=dict(LC_ALL='C'))
        if rc != 0:
            raise self.fail(action, 255 if rc == 255 or 'connection unexpectedly closed' in (err or '') else rc, err)

    def remote_dir(self, prefix):
        return '%s:%s/' % (self.destination, self.where(prefix).rstrip('/'))

    # ------------------------------------------------------------ reading

    def children(self, prefix, marker):
        out = self.run('listing %s' % self.where(prefix), CHILDREN_SCRIPT, [self.where(prefix), marker])
        found = {}
        for record in out.split(RECORD):
            head, dummy, body = record.lstrip('\n').partition('\n')
            kind, dummy, name = head.partition(' ')
            if kind not in ('C', 'U') or not name:
                continue
            if kind == 'U':
                found[name] = None
                continue
            try:
                found[name] = json.loads(body)
            except ValueError:
                found[name] = dict(problem='its marker is not JSON')
        return found

    def get_json(self, key):
        out = self.run('reading %s' % self.where(key), READ_SCRIPT, [self.where(key)])
        if not out:
            return None
        try:
            return json.loads(out[1:])
        except ValueError as exc:
            raise OffsiteError('%s on %s is not valid JSON (%s); the remote copy is damaged' % (
                self.where(key), self.label, exc))

    def digests(self, prefix, names):
        """{name: {size, sha256} or None when missing}, read on the remote host."""
        if not names:
            return {}
        out = self.run('reading the checksums below %s' % self.where(prefix), DIGEST_SCRIPT,
                       [self.where(prefix)] + list(names))
        lines = out.splitlines()
        if len(lines) != len(names):
            raise OffsiteError('ssh target %s answered %d checksums for %d files below %s' % (
                self.label, len(lines), len(names), self.where(prefix)))
        found = {}
        for name, line in zip(names, lines):
            match = re.match(r'^(\d+) ([0-9a-f]{64})$', line.strip())
            found[name] = dict(size=int(match.group(1)), sha256=match.group(2)) if match else None
        return found

    def mismatched(self, prefix, objects, deep=True):
        names = sorted(objects)
        problems = {}
        for name, found in sorted(self.digests(prefix, names).items()):
            problem = compare(self.where(prefix + name), found, objects[name], True)
            if problem:
                problems[name] = problem
        return problems

    def get_files(self, prefix, names, local_root):
        self.rsync('downloading %s' % self.where(prefix), names, self.remote_dir(prefix),
                   local_root.rstrip('/') + '/')

    def get(self, key, dest):
        directory, name = posixpath.split(key)
        parent = os.path.dirname(dest)
        # rsync keeps the remote name; the file arrives as <parent>/<name> and is renamed to dest.
        self.get_files(directory + '/' if directory else '', [name], parent)
        arrived = os.path.join(parent, name)
        if arrived != dest:
            os.rename(arrived, dest)
        return os.path.getsize(dest), sha256_file(dest)

    # ------------------------------------------------------------ writing

    def put_files(self, local_root, prefix, names, expected=None, lock=None, throttle=None):
        expected = expected or {}
        sent = {}
        for name in names:
            path = os.path.join(local_root, name)
            digest = sha256_file(path)
            check_digest(path, digest, expected.get(name))
            sent[name] = dict(size=os.path.getsize(path), sha256=digest, resumed_bytes=0)
        if names:
            self.run('creating %s' % self.where(prefix), 'mkdir -p -- "$1" && chmod 700 -- "$1"',
                     [self.where(prefix).rstrip('/')])
            self.rsync('sending to %s' % self.where(prefix), list(names), local_root.rstrip('/') + '/',
                       self.remote_dir(prefix), throttle)
        return sent

    def put(self, path, key, expected_sha256=None, lock=None, throttle=None):
        directory, name = posixpath.split(key)
        if os.path.basename(path) != name:
            raise OffsiteError('%s cannot be sent as %s: rsync keeps the file name' % (path, key))
        return self.put_files(os.path.dirname(path), directory + '/' if directory else '', [name],
                              {name: expected_sha256}, lock, throttle)[name]

    def put_bytes(self, key, data, lock=None):
        self.run('writing %s' % self.where(key), DOCUMENT_SCRIPT, [self.where(key)], data=data)
        return dict(size=len(data), sha256=hashlib.sha256(data).hexdigest())

    def delete_key(self, key):
        self.run('deleting %s' % self.where(key), 'rm -f -- "$1"', [self.where(key)])
        return []

    def delete_prefix(self, prefix, first=None):
        directory, name = posixpath.split(prefix.rstrip('/'))
        return self.delete_sets([name], directory)

    def delete_sets(self, names, parent=''):
        if names:
            self.run('deleting %s' % ', '.join(names), DELETE_SCRIPT, [self.where(parent), MARKER] + list(names))
        return []
