# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where off-site copies live: one interface, an S3 and an SSH implementation, and the factory that picks one by
``type``. Everything above it (which sets, groups and PITR files go, markers, the WAL catalog, age encryption,
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

S3: every object is sent with Content-MD5 (the server refuses corrupted transfers) and afterwards its size and ETag
(the MD5 the server computed over what it stored; for multipart uploads the MD5 of the part MD5s) are compared with
the values computed from the local bytes. A deep check reads every object back and compares sha256 digests.

SSH: the system ``ssh`` in batch mode (no password prompts; a key file or an agent) and ``rsync --partial`` on both
ends (an interrupted transfer resumes); the remote side needs a POSIX shell, coreutils (``sha256sum``, ``wc``) and
rsync. Host keys are checked against ``known_hosts_file`` (or the user's known_hosts) unless
``strict_host_key_checking`` is off. The size and sha256 of remote files are computed on the remote host, so every
check is deep; documents are written beside their name and renamed, so they are whole or absent.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os
import posixpath
import re
import shlex
import threading
import time
import traceback

try:
    import boto3
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, EndpointConnectionError
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()

    class BotoCoreError(Exception):
        pass

    class ClientError(Exception):
        pass

    class NoCredentialsError(BotoCoreError):
        pass

    class EndpointConnectionError(BotoCoreError):
        pass

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import isoformat, sha256_file, utcnow
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import (
    MARKER, OffsiteError, check_digest, md5_b64, multipart_etag)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import MIB
from ansible_collections.stackops.runbooks.plugins.module_utils.pipeline import CHUNK

TYPES = ('s3', 'ssh')
MIN_PART = 5 * MIB  # S3's smallest part (all but the last)
AUTH_CODES = ('InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'ExpiredToken', 'InvalidToken',
              'AuthorizationHeaderMalformed', 'InvalidClientTokenId', 'UnrecognizedClientException')


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


def open_target(module, params):
    """The target ``params`` describe: S3Target or SshTarget."""
    kind = target_type(params)
    missing = [name for name in REQUIRED[kind] if not params.get(name)]
    if missing:
        raise OffsiteError('a %s target needs %s; set it in stackops_offsite_targets (docs/offsite.md)' % (
            kind, ' and '.join(missing)))
    return (S3Target if kind == 's3' else SshTarget)(module, params)


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


# ================================================================================================ S3

def require_boto3(module):
    if not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib('boto3'), exception=BOTO3_IMPORT_ERROR)


def lock_args(lock):
    if not lock:
        return {}
    return dict(ObjectLockMode=lock['mode'], ObjectLockRetainUntilDate=lock['until'])


class S3Target(OffsiteTarget):
    """One bucket/prefix on one endpoint, with the error handling every call shares."""

    type = 's3'

    def __init__(self, module, params):
        require_boto3(module)
        self.module = module
        self.bucket = params['bucket']
        prefix = (params.get('prefix') or '').strip('/')
        self.prefix = prefix + '/' if prefix else ''
        self.endpoint = params.get('endpoint_url')
        self.label = 's3://%s/%s%s' % (self.bucket, self.prefix, (' at %s' % self.endpoint) if self.endpoint else '')
        self.name = params.get('target_name') or self.bucket
        self.part_size = max(int(params.get('part_size_mib') or 32) * MIB, MIN_PART)
        self.concurrency = max(int(params.get('max_concurrency') or 1), 1)
        self._versioned = None
        core = botocore.session.Session(profile=params.get('profile') or None)
        if params.get('credentials_file'):
            core.set_config_variable('credentials_file', params['credentials_file'])
        session = boto3.session.Session(botocore_session=core)
        verify = params.get('ca_bundle') or bool(params.get('validate_certs', True))
        config = Config(
            s3={'addressing_style': 'path' if params.get('path_style') else 'auto'},
            retries={'max_attempts': 5, 'mode': 'standard'},
            connect_timeout=10, read_timeout=120, max_pool_connections=max(self.concurrency + 2, 10),
            # Integrity is ours (Content-MD5 on every request, ETag and size checks); the newer default
            # CRC checksums are refused by several S3-compatible servers.
            request_checksum_calculation='when_required', response_checksum_validation='when_required')
        try:
            self.client = session.client(
                's3', endpoint_url=self.endpoint or None, region_name=params.get('region') or None, verify=verify,
                aws_access_key_id=params.get('access_key') or None,
                aws_secret_access_key=params.get('secret_key') or None,
                aws_session_token=params.get('session_token') or None, config=config)
        except (BotoCoreError, ValueError) as exc:
            raise OffsiteError('cannot set up an S3 client for %s: %s' % (self.label, exc))

    def where(self, key):
        return self.prefix + key

    def url(self, key):
        return 's3://%s/%s' % (self.bucket, self.where(key))

    # ------------------------------------------------------------ errors

    def fail(self, exc, action):
        """An OffsiteError that says what failed, where, and what to do next (botocore never puts secrets in these)."""
        if isinstance(exc, OffsiteError):
            return exc
        if isinstance(exc, NoCredentialsError):
            return OffsiteError('no S3 credentials found for %s while %s: set access_key/secret_key (an AWX credential), '
                                'AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or credentials_file' % (self.label, action))
        if isinstance(exc, EndpointConnectionError):
            return OffsiteError('cannot reach the S3 endpoint %s while %s: %s; check endpoint_url and that the '
                                'server runs' % (self.endpoint or 'of AWS', action, exc))
        if isinstance(exc, ClientError):
            error = exc.response.get('Error') or {}
            code = error.get('Code') or '?'
            if code in AUTH_CODES:
                return OffsiteError('%s refused the credentials while %s (%s: %s); check the access key and secret key '
                                    '(or AWS profile) and that they may use bucket %s' % (
                                        self.label, action, code, error.get('Message', ''), self.bucket))
            if code in ('NoSuchBucket',):
                return OffsiteError('bucket %s does not exist at %s (while %s); create it first' % (
                    self.bucket, self.endpoint or 'AWS', action))
            return OffsiteError('%s failed on %s: %s %s' % (action, self.label, code, error.get('Message', '')))
        return OffsiteError('%s failed on %s: %s' % (action, self.label, exc))

    def call(self, action, method, **kwargs):
        try:
            return getattr(self.client, method)(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self.fail(exc, action)

    # ------------------------------------------------------------ reading

    def head(self, key):
        full = self.where(key)
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=full)
        except ClientError as exc:
            status = exc.response.get('ResponseMetadata', {}).get('HTTPStatusCode')
            if status == 404 or (exc.response.get('Error') or {}).get('Code') in ('404', 'NoSuchKey', 'NotFound'):
                return None
            raise self.fail(exc, 'reading %s' % full)
        except BotoCoreError as exc:
            raise self.fail(exc, 'reading %s' % full)
        return dict(size=int(response['ContentLength']), etag=response.get('ETag', '').strip('"'))

    def get_json(self, key):
        full = self.where(key)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=full)['Body'].read()
        except ClientError as exc:
            if (exc.response.get('Error') or {}).get('Code') in ('NoSuchKey', '404', 'NotFound'):
                return None
            raise self.fail(exc, 'reading %s' % full)
        except BotoCoreError as exc:
            raise self.fail(exc, 'reading %s' % full)
        try:
            return json.loads(body.decode('utf-8'))
        except ValueError as exc:
            raise OffsiteError('%s on %s is not valid JSON (%s); the remote copy is damaged' % (full, self.label, exc))

    def list_keys(self, full_prefix):
        keys, token = [], None
        while True:
            kwargs = dict(Bucket=self.bucket, Prefix=full_prefix)
            if token:
                kwargs['ContinuationToken'] = token
            page = self.call('listing %s' % full_prefix, 'list_objects_v2', **kwargs)
            keys.extend(dict(key=entry['Key'], size=int(entry['Size']), modified=entry.get('LastModified'))
                        for entry in page.get('Contents') or [])
            if not page.get('IsTruncated'):
                return keys
            token = page.get('NextContinuationToken')

    def children(self, prefix, marker):
        full, names, token = self.where(prefix), [], None
        while True:
            kwargs = dict(Bucket=self.bucket, Prefix=full, Delimiter='/')
            if token:
                kwargs['ContinuationToken'] = token
            page = self.call('listing %s' % (full or self.label), 'list_objects_v2', **kwargs)
            names.extend(entry['Prefix'][len(full):].rstrip('/') for entry in page.get('CommonPrefixes') or [])
            if not page.get('IsTruncated'):
                break
            token = page.get('NextContinuationToken')
        found = {}
        for name in names:
            document = self.get_json('%s%s/%s' % (prefix, name, marker))
            # Some servers keep an emptied prefix listed after its objects were deleted.
            if document is None and not self.call('listing %s' % name, 'list_objects_v2', Bucket=self.bucket,
                                                  Prefix='%s%s/' % (full, name), MaxKeys=1).get('KeyCount', 1):
                continue
            found[name] = document
        return found

    def read_sha256(self, key):
        full = self.where(key)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=full)['Body']
            digest, size = hashlib.sha256(), 0
            for chunk in iter(lambda: body.read(CHUNK), b''):
                digest.update(chunk)
                size += len(chunk)
        except (BotoCoreError, ClientError) as exc:
            raise self.fail(exc, 'reading %s' % full)
        return size, digest.hexdigest()

    def mismatched(self, prefix, objects, deep=False):
        problems = {}
        for name, meta in sorted(objects.items()):
            found = self.head(prefix + name)
            if found is not None and deep:
                found['sha256'] = self.read_sha256(prefix + name)[1]
            problem = compare(self.where(prefix + name), found, meta, deep)
            if problem:
                problems[name] = problem
        return problems

    def get(self, key, dest):
        from boto3.s3.transfer import TransferConfig
        config = TransferConfig(multipart_threshold=self.part_size, multipart_chunksize=self.part_size,
                                max_concurrency=self.concurrency)
        try:
            self.client.download_file(self.bucket, self.where(key), dest, Config=config)
        except (BotoCoreError, ClientError) as exc:
            raise self.fail(exc, 'downloading %s' % self.where(key))
        return os.path.getsize(dest), sha256_file(dest)

    # ------------------------------------------------------------ writing

    def put_bytes(self, key, data, lock=None):
        md5 = hashlib.md5(data).digest()
        self.call('uploading %s' % self.where(key), 'put_object', Bucket=self.bucket, Key=self.where(key), Body=data,
                  ContentMD5=md5_b64(md5), **lock_args(lock))
        return dict(size=len(data), etag=md5.hex(), sha256=hashlib.sha256(data).hexdigest())

    def put(self, path, key, expected_sha256=None, lock=None, throttle=None):
        """Upload ``path`` to ``key`` (multipart above one part, resuming an unfinished multipart upload of the same
        key and part size). The sha256 of the bytes sent is compared with ``expected_sha256`` before the upload is
        completed."""
        size = os.path.getsize(path)
        if size <= self.part_size:
            with open(path, 'rb') as handle:
                data = handle.read()
            check_digest(path, hashlib.sha256(data).hexdigest(), expected_sha256)
            if throttle:
                throttle.take(len(data))
            sent = self.put_bytes(key, data, lock)
            sent['resumed_bytes'] = 0
            return sent
        return self.upload_multipart(path, self.where(key), size, expected_sha256, lock, throttle)

    def open_multipart(self, full, lock):
        """An unfinished upload of ``full`` to resume ({part number: (etag, size)}), or a new one."""
        uploads = self.call('listing unfinished uploads of %s' % full, 'list_multipart_uploads', Bucket=self.bucket,
                            Prefix=full).get('Uploads') or []
        mine = sorted((u for u in uploads if u['Key'] == full), key=lambda u: u.get('Initiated') or 0, reverse=True)
        for stale in mine[1:]:
            self.abort(full, stale['UploadId'])
        if mine:
            upload_id, parts, marker = mine[0]['UploadId'], {}, 0
            while True:
                page = self.call('listing parts of %s' % full, 'list_parts', Bucket=self.bucket, Key=full,
                                 UploadId=upload_id, PartNumberMarker=marker)
                for part in page.get('Parts') or []:
                    parts[int(part['PartNumber'])] = (part['ETag'].strip('"'), int(part['Size']))
                if not page.get('IsTruncated'):
                    break
                marker = int(page.get('NextPartNumberMarker') or 0)
            first = parts.get(1)
            if first is None or first[1] == self.part_size:
                return upload_id, parts
            # Written with another part size: its parts cannot line up with ours.
            self.abort(full, upload_id)
        created = self.call('starting the upload of %s' % full, 'create_multipart_upload', Bucket=self.bucket,
                            Key=full, **lock_args(lock))
        return created['UploadId'], {}

    def abort(self, full, upload_id):
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except (BotoCoreError, ClientError):
            pass  # an upload we cannot abort is cleaned by the bucket's lifecycle rules; it never counts as a copy

    def upload_multipart(self, path, full, size, expected_sha256, lock, throttle):
        from concurrent.futures import ThreadPoolExecutor
        upload_id, existing = self.open_multipart(full, lock)
        digest = hashlib.sha256()
        md5s, futures, resumed = [], [], 0

        def send(number, data, md5):
            if throttle:
                throttle.take(len(data))
            response = self.call('uploading part %d of %s' % (number, full), 'upload_part', Bucket=self.bucket,
                                 Key=full, UploadId=upload_id, PartNumber=number, Body=data, ContentMD5=md5_b64(md5))
            if response.get('ETag', '').strip('"') != md5.hex():
                raise OffsiteError('part %d of %s: the server stored MD5 %s, we sent %s; the transfer was damaged, '
                                   'run the copy again' % (number, full, response.get('ETag'), md5.hex()))

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool, open(path, 'rb') as handle:
            number = 0
            while True:
                data = handle.read(self.part_size)
                if not data:
                    break
                number += 1
                digest.update(data)
                md5 = hashlib.md5(data).digest()
                md5s.append(md5)
                if existing.get(number) == (md5.hex(), len(data)):
                    resumed += len(data)
                    continue
                # Bounded read-ahead: at most 2 x concurrency parts in memory.
                while len([f for f in futures if not f.done()]) >= 2 * self.concurrency:
                    time.sleep(0.01)
                futures.append(pool.submit(send, number, data, md5))
            for future in futures:
                future.result()
        check_digest(path, digest.hexdigest(), expected_sha256)
        parts = [dict(PartNumber=index + 1, ETag='"%s"' % md5.hex()) for index, md5 in enumerate(md5s)]
        self.call('completing the upload of %s' % full, 'complete_multipart_upload', Bucket=self.bucket, Key=full,
                  UploadId=upload_id, MultipartUpload=dict(Parts=parts))
        return dict(size=size, etag=multipart_etag(md5s), sha256=digest.hexdigest(), resumed_bytes=resumed)

    # ------------------------------------------------------------ locks and deletes

    def versioned(self):
        """True when the bucket keeps versions (always so with Object Lock): a plain delete only hides an object."""
        if self._versioned is None:
            try:
                status = self.client.get_bucket_versioning(Bucket=self.bucket).get('Status')
            except ClientError:
                status = None  # servers without versioning support
            except BotoCoreError as exc:
                raise self.fail(exc, 'reading the versioning of bucket %s' % self.bucket)
            self._versioned = status in ('Enabled', 'Suspended')
        return self._versioned

    def versions(self, full_prefix):
        """(key, version id) of every version and delete marker below ``full_prefix``."""
        out, kwargs = [], dict(Bucket=self.bucket, Prefix=full_prefix)
        while True:
            page = self.call('listing the versions below %s' % full_prefix, 'list_object_versions', **kwargs)
            for entry in (page.get('Versions') or []) + (page.get('DeleteMarkers') or []):
                out.append((entry['Key'], entry['VersionId']))
            if not page.get('IsTruncated'):
                return out
            kwargs.update(KeyMarker=page.get('NextKeyMarker'), VersionIdMarker=page.get('NextVersionIdMarker'))

    def locks(self, prefix, now=None):
        """Objects below ``prefix`` that S3 Object Lock keeps from deletion now: [{key, mode, until, legal_hold}]."""
        now = now or utcnow()
        found = []
        for entry in self.list_keys(self.where(prefix)):
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=entry['key'])
            except (BotoCoreError, ClientError) as exc:
                raise self.fail(exc, 'reading the lock of %s' % entry['key'])
            until = head.get('ObjectLockRetainUntilDate')
            hold = head.get('ObjectLockLegalHoldStatus') == 'ON'
            if hold or (until is not None and until > now):
                found.append(dict(key=entry['key'], mode=head.get('ObjectLockMode'), legal_hold=hold,
                                  until=isoformat(until) if until is not None else None))
        return found

    def entries(self, full_prefix):
        if self.versioned():
            return self.versions(full_prefix)
        return [(entry['key'], None) for entry in self.list_keys(full_prefix)]

    def delete_entries(self, entries):
        refused = []
        for full, version in entries:
            kwargs = dict(Bucket=self.bucket, Key=full)
            if version is not None:
                kwargs['VersionId'] = version
            try:
                self.client.delete_object(**kwargs)
            except ClientError as exc:
                refused.append('%s (%s)' % (full, (exc.response.get('Error') or {}).get('Code', '?')))
            except BotoCoreError as exc:
                raise self.fail(exc, 'deleting %s' % full)
        return refused

    def delete_key(self, key):
        """Delete exactly ``key`` (every version of it in a versioned bucket; never other keys it is a prefix of)."""
        full = self.where(key)
        return self.delete_entries([entry for entry in self.entries(full) if entry[0] == full])

    def delete_prefix(self, prefix, first=None):
        """Everything below ``prefix``, ``first`` (the marker: the copy stops counting at once) before the rest, and
        the unfinished uploads. In a versioned bucket every version goes, so nothing is left behind hidden."""
        full = self.where(prefix)
        head = full + first if first else None
        entries = self.entries(full)
        refused = self.delete_entries([e for e in entries if e[0] == head] + [e for e in entries if e[0] != head])
        uploads = self.call('listing unfinished uploads of %s' % full, 'list_multipart_uploads', Bucket=self.bucket,
                            Prefix=full).get('Uploads') or []
        for upload in uploads:
            self.abort(upload['Key'], upload['UploadId'])
        return refused


# ================================================================================================ SSH

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
