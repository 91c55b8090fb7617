# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Off-site copies of backup sets on a host reached over SSH (rsync), shared by ssh_backup_copy/_info/_fetch.

The layout and the rules are those of the S3 target (module_utils/offsite.py): every file of a set lives below
``<path>/<backup id>/`` with its relative path, ``manifest.json`` and ``verification.json`` come along, and the
completion marker ``stackops-copy.json`` (offsite.marker_for) is written last, by a rename on the remote host, and
only after the size and sha256 of every remote file (read on the remote host with ``sha256sum``) matched what was
hashed against the manifest here. A directory without the marker is an unfinished copy: it never counts, the next
copy resumes it (``rsync --partial``) and retention removes it once its local set is gone.

Transport: the system ``ssh`` in batch mode (no password prompts; a key file or an agent) and ``rsync`` on both
ends; the remote side needs a POSIX shell, coreutils (``sha256sum``, ``wc``) and rsync. Host keys are checked
against ``known_hosts_file`` (or the user's known_hosts) unless ``strict_host_key_checking`` is off.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import posixpath
import re
import shlex

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import utcnow, valid_backup_id
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import normalize_recipients
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import COPY_FORMAT, MARKER, OffsiteError, json_bytes
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import copy_entry

RECORD = '\n\x1e\n'
PARTIAL_DIR = '.rsync-partial'

# Every directory of the copy root: "C <id>" and its marker, or "U <id>" (no marker: unfinished).
CATALOG_SCRIPT = r'''
cd -- "$1" 2>/dev/null || exit 0
for d in *; do
  [ -d "$d" ] || continue
  if [ -f "$d/@MARKER@" ]; then printf 'C %s\n' "$d"; cat -- "$d/@MARKER@"
  else printf 'U %s\n' "$d"; fi
  printf '\n\036\n'
done
'''.replace('@MARKER@', MARKER)

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

# The marker arrives on stdin: written beside its final name, synced, then renamed, so it is whole or absent.
MARKER_SCRIPT = r'''
cd -- "$1" || exit 3
cat > .@MARKER@.tmp && sync .@MARKER@.tmp 2>/dev/null; mv -f .@MARKER@.tmp @MARKER@
'''.replace('@MARKER@', MARKER)

# The marker first: the copy stops counting at once, whatever happens to the rest.
DELETE_SCRIPT = r'''
cd -- "$1" 2>/dev/null || exit 0
shift
for d; do rm -f -- "$d/@MARKER@" && rm -rf -- "$d" || exit 5; done
'''.replace('@MARKER@', MARKER)


def ssh_target_spec():
    return dict(
        host=dict(type='str', required=True),
        port=dict(type='int', default=22),
        user=dict(type='str'),
        path=dict(type='str', required=True),
        identity_file=dict(type='path'),
        known_hosts_file=dict(type='path'),
        strict_host_key_checking=dict(type='bool', default=True),
        ssh_options=dict(type='list', elements='str', default=[]),
        connect_timeout=dict(type='int', default=10),
        target_name=dict(type='str'),
    )


def plaintext_problems(manifests, recipients):
    """Why each set (its manifest) may not go to an ssh target while age ``recipients`` are configured; [] when all may.

    rsync sends the files as they are on disk and nothing encrypts them on the way, so with recipients configured only
    a set encrypted at rest (encryption.encrypt_set) to every one of them qualifies: what lands is ciphertext the
    configured keys open. Anything else would put rows on the remote host in plaintext, or sealed to other keys.
    """
    wanted = normalize_recipients(recipients)
    if not wanted:
        return []
    problems = []
    for manifest in manifests:
        encryption = manifest.get('encryption')
        if not encryption:
            problems.append('%s is not encrypted at rest' % manifest['id'])
            continue
        missing = [key for key in wanted if key not in (encryption.get('recipients') or [])]
        if missing:
            problems.append('%s is encrypted at rest to %s, not to %s' % (
                manifest['id'], ', '.join(encryption.get('recipients') or []) or 'nobody', ', '.join(missing)))
    return problems


def refuse_plaintext(manifests, recipients, label, group_id=None):
    """Raise OffsiteError unless every set about to be sent qualifies (plaintext_problems). Called before the first
    byte goes, with every set of a group, so no part of a group lands unencrypted."""
    problems = plaintext_problems(manifests, recipients)
    if problems:
        what = ('backup group %s' % group_id) if group_id else ', '.join(manifest['id'] for manifest in manifests)
        raise OffsiteError(
            'refusing to copy %s to ssh target %s: age_recipients (stackops_offsite_age_recipients) are set, but %s. '
            'ssh targets receive the files as they are on disk and never encrypt in transit, so nothing was sent. '
            'Set stackops_backup_encrypt: true so every new verified set is encrypted at rest to '
            'stackops_offsite_age_recipients before it is copied (or encrypt this set with '
            'stackops.runbooks.pg_backup_encrypt), or send it to an S3 target, which encrypts at copy time' % (
                what, label, '; '.join(problems)))


class SshTarget(object):
    """One copy root on one SSH host; every remote step is one ssh (or rsync) call."""

    def __init__(self, module, params):
        self.module = module
        self.host = params['host']
        self.port = params['port']
        self.user = params['user']
        self.root = params['path'].rstrip('/') or '/'
        if not self.root.startswith('/'):
            raise OffsiteError('path %r of ssh target %s must be absolute' % (params['path'], self.host))
        self.destination = ('%s@%s' % (self.user, self.host)) if self.user else self.host
        self.label = 'ssh://%s:%d%s' % (self.destination, self.port, self.root)
        self.name = params['target_name'] or self.label
        argv = [module.get_bin_path('ssh', required=True), '-p', str(self.port), '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=%d' % params['connect_timeout'],
                '-o', 'StrictHostKeyChecking=%s' % ('yes' if params['strict_host_key_checking'] else 'no')]
        if params['known_hosts_file']:
            argv += ['-o', 'UserKnownHostsFile=%s' % params['known_hosts_file']]
        if params['identity_file']:
            argv += ['-i', params['identity_file'], '-o', 'IdentitiesOnly=yes']
        for option in params['ssh_options']:
            argv += ['-o', option]
        self.ssh_argv = argv
        self.bin_rsync = module.get_bin_path('rsync', required=True)

    def set_dir(self, backup_id):
        return posixpath.join(self.root, backup_id)

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

    def rsync(self, action, files, source, dest, bwlimit_mib=0):
        argv = [self.bin_rsync, '-rt', '--partial', '--partial-dir=%s' % PARTIAL_DIR, '--chmod=D0700,F0600',
                '--from0', '--files-from=-', '-e', ' '.join(shlex.quote(arg) for arg in self.ssh_argv)]
        if bwlimit_mib:
            argv.append('--bwlimit=%dk' % (bwlimit_mib * 1024))
        rc, out, err = self.module.run_command(argv + ['--', source, dest], data='\0'.join(files), binary_data=True,
                                               environ_update=dict(LC_ALL='C'))
        if rc != 0:
            raise self.fail(action, 255 if rc == 255 or 'connection unexpectedly closed' in (err or '') else rc, err)

    def remote(self, backup_id):
        return '%s:%s/' % (self.destination, self.set_dir(backup_id))

    # ------------------------------------------------------------ reading

    def markers(self):
        """{backup id: marker dict, or None for an unfinished copy}; directories that are no backup id are ignored."""
        out = self.run('listing the copies', CATALOG_SCRIPT, [self.root])
        found = {}
        for record in out.split(RECORD):
            head, dummy, body = record.lstrip('\n').partition('\n')
            kind, dummy, backup_id = head.partition(' ')
            if kind not in ('C', 'U') or not valid_backup_id(backup_id):
                continue
            if kind == 'U':
                found[backup_id] = None
                continue
            try:
                found[backup_id] = json.loads(body)
            except ValueError:
                found[backup_id] = dict(problem='its marker is not JSON')
        return found

    def catalog(self, database=None, now=None):
        """(complete copies newest first, unfinished copies), the shape of offsite.S3Target.catalog."""
        now = now or utcnow()
        sets, unfinished = [], []
        for backup_id, marker in sorted(self.markers().items()):
            if marker is None:
                unfinished.append(dict(id=backup_id, location=self.label))
                continue
            if marker.get('copy_format') != COPY_FORMAT or marker.get('id') != backup_id:
                unfinished.append(dict(id=backup_id, location=self.label, problem=marker.get('problem') or (
                    'marker does not describe %s (format %r, id %r)' % (
                        backup_id, marker.get('copy_format'), marker.get('id')))))
                continue
            if database is not None and marker.get('database') != database:
                continue
            entry = copy_entry(backup_id, marker, self.label, now)
            entry['marker'] = marker
            sets.append(entry)
        sets.sort(key=lambda entry: entry['started_at'], reverse=True)
        return sets, unfinished

    def digests(self, backup_id, names):
        """{name: (size, sha256) or None when missing}, read on the remote host."""
        if not names:
            return {}
        out = self.run('reading the checksums of %s' % backup_id, DIGEST_SCRIPT, [self.set_dir(backup_id)] + names)
        lines = out.splitlines()
        if len(lines) != len(names):
            raise OffsiteError('ssh target %s answered %d checksums for %d files of %s' % (
                self.label, len(lines), len(names), backup_id))
        found = {}
        for name, line in zip(names, lines):
            match = re.match(r'^(\d+) ([0-9a-f]{64})$', line.strip())
            found[name] = (int(match.group(1)), match.group(2)) if match else None
        return found

    def check_copy(self, marker):
        """Problems of a copy: every file of its marker present with the recorded size and sha256."""
        objects = marker.get('objects') or {}
        names = sorted(objects)
        problems = []
        for name, found in sorted(self.digests(marker['id'], names).items()):
            meta = objects[name]
            where = '%s/%s' % (self.set_dir(marker['id']), name)
            if found is None:
                problems.append('%s: missing' % where)
            elif found[0] != meta['size']:
                problems.append('%s: size %d, copy says %d' % (where, found[0], meta['size']))
            elif found[1] != meta['sha256']:
                problems.append('%s: sha256 %s, copy says %s (the file was changed or damaged)' % (
                    where, found[1], meta['sha256']))
        return problems

    # ------------------------------------------------------------ writing

    def upload(self, local_dir, backup_id, names, bwlimit_mib=0):
        self.run('creating %s' % self.set_dir(backup_id), 'mkdir -p -- "$1" && chmod 700 -- "$1"',
                 [self.set_dir(backup_id)])
        self.rsync('sending %s' % backup_id, names, local_dir.rstrip('/') + '/', self.remote(backup_id), bwlimit_mib)

    def remove_files(self, backup_id, names):
        self.run('removing damaged files of %s' % backup_id, 'cd -- "$1" && shift && rm -f -- "$@"',
                 [self.set_dir(backup_id)] + names)

    def put_marker(self, backup_id, marker):
        self.run('writing the marker of %s' % backup_id, MARKER_SCRIPT, [self.set_dir(backup_id)], data=json_bytes(marker))

    def delete_sets(self, backup_ids):
        if backup_ids:
            self.run('deleting %s' % ', '.join(backup_ids), DELETE_SCRIPT, [self.root] + list(backup_ids))

    def download(self, backup_id, names, local_dir, bwlimit_mib=0):
        self.rsync('downloading %s' % backup_id, names, self.remote(backup_id), local_dir.rstrip('/') + '/',
                   bwlimit_mib)
