# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where off-site copies live: the interface every transport implements, and the options of each transport.
Everything above it (which sets, groups and PITR files go, markers, the WAL catalog, age encryption,
retention, the checks of remote names) is written once in offsite.py, offsite_sets.py and offsite_pitr.py and works
on every transport.

Every key is relative to the target's root (the S3 prefix, the SSH ``path``) and uses ``/``: ``<backup id>/<file>``
for backup sets, ``.pitr/<server>/...`` for physical backups and WAL. A "directory" is a key prefix ending in ``/``.

The interface (``OffsiteTarget``):

- ``put(path, key, expected_sha256, lock, throttle)`` and ``put_files(local_root, prefix, names, ...)``: send local
  files, returning per file ``{size, sha256, etag (S3), resumed_bytes}``; ``put_bytes(key, data, lock)`` writes a
  small document whole or not at all.
- ``get(key, dest)`` returns (size, sha256) of what arrived; ``get_files`` many into one directory;
  ``get_json(key)`` a document or None.
- ``children(prefix, marker)``: {name: the marker document below it, or None}; the catalogs are built on it.
- ``delete_key(key)``, ``delete_prefix(prefix, first)``: return what the target refused to delete.
- ``mismatched(prefix, objects, deep)``: {name: problem} of stored objects against their recorded size and digest.
- ``locks(prefix)``: what the target keeps from deletion now (S3 Object Lock; nothing over SSH).

The implementations: offsite_s3.S3Target (boto3) and offsite_ssh.SshTarget (ssh and rsync);
offsite_family.open_target picks one by ``type``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import threading
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import MARKER, OffsiteError
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import MIB

TYPES = ('s3', 'ssh')


def s3_spec():
    """Options naming one S3 target and its credentials (doc fragment stackops.runbooks.s3)."""
    return dict(
        bucket=dict(type='str'),
        prefix=dict(type='str', default=''),
        endpoint_url=dict(type='str'),
        region=dict(type='str'),
        path_style=dict(type='bool', default=False),
        validate_certs=dict(type='bool', default=True),
        ca_bundle=dict(type='path'),
        access_key=dict(type='str', no_log=True, aliases=['aws_access_key_id']),
        secret_key=dict(type='str', no_log=True, aliases=['aws_secret_access_key']),
        session_token=dict(type='str', no_log=True, aliases=['aws_session_token']),
        profile=dict(type='str'),
        credentials_file=dict(type='path'),
        part_size_mib=dict(type='int', default=32),
        max_concurrency=dict(type='int', default=4),
    )


def ssh_spec():
    """Options naming one SSH target (doc fragment stackops.runbooks.ssh)."""
    return dict(
        host=dict(type='str'),
        port=dict(type='int', default=22),
        user=dict(type='str'),
        path=dict(type='str'),
        identity_file=dict(type='path'),
        known_hosts_file=dict(type='path'),
        strict_host_key_checking=dict(type='bool', default=True),
        ssh_options=dict(type='list', elements='str', default=[]),
        connect_timeout=dict(type='int', default=10),
    )


def target_spec():
    """Every transport's options and ``type`` (doc fragment stackops.runbooks.offsite_target)."""
    spec = dict(type=dict(type='str', choices=list(TYPES)), target_name=dict(type='str'))
    spec.update(s3_spec())
    spec.update(ssh_spec())
    return spec


REQUIRED = dict(s3=('bucket',), ssh=('host', 'path'))


def target_type(params):
    """``type``, else the transport the given options name (the old s3_*/ssh_* module names give no type)."""
    if params.get('type'):
        return params['type']
    if params.get('bucket') and not params.get('host'):
        return 's3'
    if params.get('host') and not params.get('bucket'):
        return 'ssh'
    raise OffsiteError('cannot tell the target: give type (s3 or ssh) with bucket (s3) or host and path (ssh)')


class Throttle(object):
    """Keeps the upload under ``mib_per_second`` (0: unlimited), shared by the threads of one copy."""

    def __init__(self, mib_per_second):
        self.mib = int(mib_per_second or 0)
        self.rate = float(self.mib) * MIB
        self.started = time.monotonic()
        self.sent = 0
        self.lock = threading.Lock()

    def take(self, size):
        if self.rate <= 0:
            return
        with self.lock:
            self.sent += size
            due = self.started + self.sent / self.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class OffsiteTarget(object):
    """The interface; the defaults below build the batch operations on the single ones."""

    type = None
    label = name = None
    # True when put_files sends a whole tree in one transfer (callers then stage encrypted files as one tree).
    batches = False

    def put(self, path, key, expected_sha256=None, lock=None, throttle=None):
        raise NotImplementedError

    def put_bytes(self, key, data, lock=None):
        raise NotImplementedError

    def get(self, key, dest):
        raise NotImplementedError

    def get_json(self, key):
        raise NotImplementedError

    def children(self, prefix, marker):
        raise NotImplementedError

    def delete_key(self, key):
        raise NotImplementedError

    def delete_prefix(self, prefix, first=None):
        raise NotImplementedError

    def mismatched(self, prefix, objects, deep=False):
        raise NotImplementedError

    def locks(self, prefix, now=None):
        return []

    def where(self, key):
        """A key as the operator finds it on the target."""
        return key

    def url(self, key):
        """A key as a URL (s3://bucket/key, ssh://user@host:port/path/key)."""
        raise NotImplementedError

    def put_files(self, local_root, prefix, names, expected=None, lock=None, throttle=None):
        """{name: sent} of ``local_root/<name>`` sent to ``prefix + name``, each hashed against ``expected``."""
        expected = expected or {}
        return dict((name, self.put(os.path.join(local_root, name), prefix + name, expected.get(name), lock, throttle))
                    for name in names)

    def get_files(self, prefix, names, local_root):
        """Download ``prefix + name`` to ``local_root/<name>`` for every name (checked by the caller)."""
        for name in names:
            dest = os.path.join(local_root, name)
            if not os.path.isdir(os.path.dirname(dest)):
                os.makedirs(os.path.dirname(dest), 0o700)
            self.get(prefix + name, dest)

    def delete_sets(self, names):
        """Delete whole copies ``<name>/`` (their marker first); returns what the target refused to delete."""
        refused = []
        for name in names:
            refused.extend(self.delete_prefix(name + '/', MARKER))
        return refused


def compare(where, found, meta, deep):
    """The problem of one stored object ({size, etag or sha256} found) against its record, or None."""
    if found is None:
        return '%s: missing' % where
    if found['size'] != meta['size']:
        return '%s: size %d, copy says %d' % (where, found['size'], meta['size'])
    if found.get('etag') is not None and meta.get('etag') and found['etag'] != meta['etag']:
        return '%s: ETag %s, copy says %s (the object was changed or damaged)' % (where, found['etag'], meta['etag'])
    if (deep or found.get('etag') is None) and found.get('sha256') and found['sha256'] != meta['sha256']:
        return '%s: sha256 %s, copy says %s (the file was changed or damaged)' % (where, found['sha256'], meta['sha256'])
    return None
