# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Off-site copies of backup sets on S3-compatible storage, shared by s3_backup_copy, s3_backup_info, s3_backup_fetch.

Layout on the target: every object of a set lives below ``<prefix><backup id>/``; the backup id is the set's
identity (the key, never a field inside a document). The files of the set keep their relative paths (``.age``
appended when encrypted), ``manifest.json`` and ``verification.json`` come along, and ``stackops-copy.json``, the
completion marker, is written last and only after every object was checked against what was read (and hashed
against the manifest) locally. A prefix without the marker is an unfinished copy: it never counts, is resumed by
the next copy and is removed by retention once nothing can resume it.

Integrity: every object is sent with Content-MD5 (the server refuses corrupted transfers) and afterwards its size
and ETag (the MD5 the server computed over what it stored; for multipart uploads the MD5 of the part MD5s) are
compared with the values computed from the local bytes, whose sha256 was compared with the manifest in the same
read. ``check=download`` reads every object back and compares sha256 digests as well.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import datetime
import hashlib
import json
import os
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
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    MANIFEST, VERIFICATION, BackupError, isoformat, utcnow, valid_backup_id)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import MIB, copy_entry
from ansible_collections.stackops.runbooks.plugins.module_utils.pipeline import CHUNK

MARKER = 'stackops-copy.json'
COPY_FORMAT = 1
MIN_PART = 5 * MIB  # S3's smallest part (all but the last)
AUTH_CODES = ('InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'ExpiredToken', 'InvalidToken',
              'AuthorizationHeaderMalformed', 'InvalidClientTokenId', 'UnrecognizedClientException')


class OffsiteError(BackupError):
    """An off-site failure; its message never contains credentials."""


def s3_target_spec():
    """Options naming one S3 target and its credentials (doc fragment stackops.runbooks.s3)."""
    return dict(
        target_name=dict(type='str'),
        bucket=dict(type='str', required=True),
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


def require_boto3(module):
    if not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib('boto3'), exception=BOTO3_IMPORT_ERROR)


def md5_b64(digest):
    return base64.b64encode(digest).decode('ascii')


def multipart_etag(md5_digests):
    """The ETag S3 gives a multipart upload: MD5 of the concatenated part MD5s, dash, number of parts."""
    return '%s-%d' % (hashlib.md5(b''.join(md5_digests)).hexdigest(), len(md5_digests))


class Throttle(object):
    """Keeps the upload under ``mib_per_second`` (0: unlimited), shared by the threads of one copy."""

    def __init__(self, mib_per_second):
        self.rate = float(mib_per_second or 0) * MIB
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


class S3Target(object):
    """One bucket/prefix on one endpoint, with the error handling every call shares."""

    def __init__(self, module, params):
        require_boto3(module)
        self.module = module
        self.bucket = params['bucket']
        prefix = (params.get('prefix') or '').strip('/')
        self.prefix = prefix + '/' if prefix else ''
        self.endpoint = params.get('endpoint_url')
        self.label = 's3://%s/%s%s' % (self.bucket, self.prefix, (' at %s' % self.endpoint) if self.endpoint else '')
        self.name = params.get('target_name') or self.bucket
        part = max(int(params.get('part_size_mib') or 32) * MIB, MIN_PART)
        self.part_size = part
        self.concurrency = max(int(params.get('max_concurrency') or 1), 1)
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

    # ------------------------------------------------------------ keys

    def set_prefix(self, backup_id):
        return '%s%s/' % (self.prefix, backup_id)

    def key(self, backup_id, rel):
        return self.set_prefix(backup_id) + rel

    def head(self, key):
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            status = exc.response.get('ResponseMetadata', {}).get('HTTPStatusCode')
            if status == 404 or (exc.response.get('Error') or {}).get('Code') in ('404', 'NoSuchKey', 'NotFound'):
                return None
            raise self.fail(exc, 'reading %s' % key)
        except BotoCoreError as exc:
            raise self.fail(exc, 'reading %s' % key)
        return dict(size=int(response['ContentLength']), etag=response.get('ETag', '').strip('"'))

    def get_json(self, key):
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)['Body'].read()
        except ClientError as exc:
            if (exc.response.get('Error') or {}).get('Code') in ('NoSuchKey', '404', 'NotFound'):
                return None
            raise self.fail(exc, 'reading %s' % key)
        except BotoCoreError as exc:
            raise self.fail(exc, 'reading %s' % key)
        try:
            return json.loads(body.decode('utf-8'))
        except ValueError as exc:
            raise OffsiteError('%s on %s is not valid JSON (%s); the remote copy is damaged' % (key, self.label, exc))

    def put_bytes(self, key, data, lock=None):
        md5 = hashlib.md5(data).digest()
        extra = lock_args(lock)
        self.call('uploading %s' % key, 'put_object', Bucket=self.bucket, Key=key, Body=data, ContentMD5=md5_b64(md5),
                  **extra)
        return dict(size=len(data), etag=md5.hex(), sha256=hashlib.sha256(data).hexdigest())

    # ------------------------------------------------------------ listing

    def list_prefixes(self):
        """Backup ids (the first key component below the prefix)."""
        ids, token = [], None
        while True:
            kwargs = dict(Bucket=self.bucket, Prefix=self.prefix, Delimiter='/')
            if token:
                kwargs['ContinuationToken'] = token
            page = self.call('listing %s' % self.label, 'list_objects_v2', **kwargs)
            for entry in page.get('CommonPrefixes') or []:
                name = entry['Prefix'][len(self.prefix):].rstrip('/')
                if valid_backup_id(name):
                    ids.append(name)
            if not page.get('IsTruncated'):
                return ids
            token = page.get('NextContinuationToken')

    def list_keys(self, prefix):
        keys, token = [], None
        while True:
            kwargs = dict(Bucket=self.bucket, Prefix=prefix)
            if token:
                kwargs['ContinuationToken'] = token
            page = self.call('listing %s' % prefix, 'list_objects_v2', **kwargs)
            keys.extend(dict(key=entry['Key'], size=int(entry['Size']), modified=entry.get('LastModified'))
                        for entry in page.get('Contents') or [])
            if not page.get('IsTruncated'):
                return keys
            token = page.get('NextContinuationToken')

    def catalog(self, database=None, now=None):
        """(complete copies newest first, unfinished copies). A copy counts only with its marker."""
        now = now or utcnow()
        sets, unfinished = [], []
        for backup_id in self.list_prefixes():
            marker = self.get_json(self.key(backup_id, MARKER))
            if marker is None:
                # Some servers keep an emptied prefix listed after its objects were deleted.
                if self.call('listing %s' % backup_id, 'list_objects_v2', Bucket=self.bucket,
                             Prefix=self.set_prefix(backup_id), MaxKeys=1).get('KeyCount', 1):
                    unfinished.append(dict(id=backup_id, location=self.label))
                continue
            if marker.get('copy_format') != COPY_FORMAT or marker.get('id') != backup_id:
                unfinished.append(dict(id=backup_id, location=self.label,
                                       problem='marker does not describe %s (format %r, id %r)' % (
                                           backup_id, marker.get('copy_format'), marker.get('id'))))
                continue
            if database is not None and marker.get('database') != database:
                continue
            sets.append(copy_entry(backup_id, marker, self.label, now))
        sets.sort(key=lambda entry: entry['started_at'], reverse=True)
        return sets, unfinished

    # ------------------------------------------------------------ uploads

    def upload_file(self, path, key, expected_sha256=None, lock=None, throttle=None):
        """Upload ``path`` to ``key`` (multipart above one part, resuming an unfinished multipart upload of the same
        key and part size). Returns {size, etag, sha256, resumed_bytes}; the sha256 is of the bytes sent, compared
        with ``expected_sha256`` before the upload is completed."""
        size = os.path.getsize(path)
        if size <= self.part_size:
            with open(path, 'rb') as handle:
                data = handle.read()
            digest = hashlib.sha256(data).hexdigest()
            check_digest(path, digest, expected_sha256)
            if throttle:
                throttle.take(len(data))
            sent = self.put_bytes(key, data, lock)
            sent['resumed_bytes'] = 0
            return sent
        return self.upload_multipart(path, key, size, expected_sha256, lock, throttle)

    def open_multipart(self, key, lock):
        """An unfinished upload of ``key`` to resume ({part number: (etag, size)}), or a new one."""
        uploads = self.call('listing unfinished uploads of %s' % key, 'list_multipart_uploads', Bucket=self.bucket,
                            Prefix=key).get('Uploads') or []
        mine = sorted((u for u in uploads if u['Key'] == key), key=lambda u: u.get('Initiated') or 0, reverse=True)
        for stale in mine[1:]:
            self.abort(key, stale['UploadId'])
        if mine:
            upload_id = mine[0]['UploadId']
            parts = {}
            marker = 0
            while True:
                page = self.call('listing parts of %s' % key, 'list_parts', Bucket=self.bucket, Key=key,
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
            self.abort(key, upload_id)
        created = self.call('starting the upload of %s' % key, 'create_multipart_upload', Bucket=self.bucket, Key=key,
                            **lock_args(lock))
        return created['UploadId'], {}

    def abort(self, key, upload_id):
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (BotoCoreError, ClientError):
            pass  # an upload we cannot abort is cleaned by the bucket's lifecycle rules; it never counts as a copy

    def upload_multipart(self, path, key, size, expected_sha256, lock, throttle):
        from concurrent.futures import ThreadPoolExecutor
        upload_id, existing = self.open_multipart(key, lock)
        digest = hashlib.sha256()
        md5s, futures, resumed = [], [], 0

        def send(number, data, md5):
            if throttle:
                throttle.take(len(data))
            response = self.call('uploading part %d of %s' % (number, key), 'upload_part', Bucket=self.bucket, Key=key,
                                 UploadId=upload_id, PartNumber=number, Body=data, ContentMD5=md5_b64(md5))
            if response.get('ETag', '').strip('"') != md5.hex():
                raise OffsiteError('part %d of %s: the server stored MD5 %s, we sent %s; the transfer was damaged, '
                                   'run the copy again' % (number, key, response.get('ETag'), md5.hex()))

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
        self.call('completing the upload of %s' % key, 'complete_multipart_upload', Bucket=self.bucket, Key=key,
                  UploadId=upload_id, MultipartUpload=dict(Parts=parts))
        return dict(size=size, etag=multipart_etag(md5s), sha256=digest.hexdigest(), resumed_bytes=resumed)

    # ------------------------------------------------------------ downloads

    def download(self, key, target):
        """Download ``key`` into ``target`` (ranged, parallel); returns (size, sha256) of what arrived."""
        from boto3.s3.transfer import TransferConfig
        config = TransferConfig(multipart_threshold=self.part_size, multipart_chunksize=self.part_size,
                                max_concurrency=self.concurrency)
        try:
            self.client.download_file(self.bucket, key, target, Config=config)
        except (BotoCoreError, ClientError) as exc:
            raise self.fail(exc, 'downloading %s' % key)
        digest = hashlib.sha256()
        with open(target, 'rb') as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b''):
                digest.update(chunk)
        return os.path.getsize(target), digest.hexdigest()

    def read_sha256(self, key):
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)['Body']
            digest, size = hashlib.sha256(), 0
            for chunk in iter(lambda: body.read(CHUNK), b''):
                digest.update(chunk)
                size += len(chunk)
        except (BotoCoreError, ClientError) as exc:
            raise self.fail(exc, 'reading %s' % key)
        return size, digest.hexdigest()

    # ------------------------------------------------------------ checks and deletes

    def check_copy(self, marker, deep=False):
        """Problems of a complete copy: every object present with the size and ETag (and with ``deep`` the sha256)
        recorded in its marker."""
        problems = []
        for name, meta in sorted((marker.get('objects') or {}).items()):
            key = self.key(marker['id'], name)
            found = self.head(key)
            if found is None:
                problems.append('%s: missing' % key)
                continue
            if found['size'] != meta['size']:
                problems.append('%s: size %d, copy says %d' % (key, found['size'], meta['size']))
                continue
            if found['etag'] != meta['etag']:
                problems.append('%s: ETag %s, copy says %s (the object was changed or damaged)' % (
                    key, found['etag'], meta['etag']))
                continue
            if deep:
                dummy, digest = self.read_sha256(key)
                if digest != meta['sha256']:
                    problems.append('%s: sha256 %s, copy says %s' % (key, digest, meta['sha256']))
        return problems

    def versioned(self):
        """True when the bucket keeps versions (always so with Object Lock): a plain delete only hides an object."""
        if getattr(self, '_versioned', None) is None:
            try:
                status = self.client.get_bucket_versioning(Bucket=self.bucket).get('Status')
            except ClientError:
                status = None  # servers without versioning support
            except BotoCoreError as exc:
                raise self.fail(exc, 'reading the versioning of bucket %s' % self.bucket)
            self._versioned = status in ('Enabled', 'Suspended')
        return self._versioned

    def versions(self, prefix):
        """(key, version id) of every version and delete marker below ``prefix``."""
        out, kwargs = [], dict(Bucket=self.bucket, Prefix=prefix)
        while True:
            page = self.call('listing the versions below %s' % prefix, 'list_object_versions', **kwargs)
            for entry in (page.get('Versions') or []) + (page.get('DeleteMarkers') or []):
                out.append((entry['Key'], entry['VersionId']))
            if not page.get('IsTruncated'):
                return out
            kwargs.update(KeyMarker=page.get('NextKeyMarker'), VersionIdMarker=page.get('NextVersionIdMarker'))

    def locks(self, prefix, now=None):
        """Objects below ``prefix`` that S3 Object Lock keeps from deletion now: [{key, mode, until, legal_hold}]."""
        now = now or utcnow()
        found = []
        for entry in self.list_keys(prefix):
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

    def delete_set(self, backup_id):
        """Delete one copy: the marker first (it stops counting at once), then its objects and unfinished uploads.
        In a versioned bucket every version goes, so nothing is left behind hidden. Returns the keys that could not
        be deleted (e.g. under Object Lock retention)."""
        return self.delete_prefix(self.set_prefix(backup_id), MARKER)

    def delete_key(self, key):
        """Delete exactly ``key`` (every version of it in a versioned bucket; never other keys it is a prefix of).
        Returns the versions the target refused to delete."""
        if self.versioned():
            entries = [entry for entry in self.versions(key) if entry[0] == key]
        else:
            entries = [(entry['key'], None) for entry in self.list_keys(key) if entry['key'] == key]
        refused = []
        for name, version in entries:
            kwargs = dict(Bucket=self.bucket, Key=name)
            if version is not None:
                kwargs['VersionId'] = version
            try:
                self.client.delete_object(**kwargs)
            except ClientError as exc:
                refused.append('%s (%s)' % (name, (exc.response.get('Error') or {}).get('Code', '?')))
            except BotoCoreError as exc:
                raise self.fail(exc, 'deleting %s' % name)
        return refused

    def delete_prefix(self, prefix, marker_name=None):
        refused = []
        marker_key = prefix + marker_name if marker_name else None
        if self.versioned():
            entries = self.versions(prefix)
        else:
            entries = [(entry['key'], None) for entry in self.list_keys(prefix)]
        ordered = [e for e in entries if e[0] == marker_key] + [e for e in entries if e[0] != marker_key]
        for key, version in ordered:
            kwargs = dict(Bucket=self.bucket, Key=key)
            if version is not None:
                kwargs['VersionId'] = version
            try:
                self.client.delete_object(**kwargs)
            except ClientError as exc:
                refused.append('%s (%s)' % (key, (exc.response.get('Error') or {}).get('Code', '?')))
            except BotoCoreError as exc:
                raise self.fail(exc, 'deleting %s' % key)
        uploads = self.call('listing unfinished uploads of %s' % prefix, 'list_multipart_uploads', Bucket=self.bucket,
                            Prefix=prefix).get('Uploads') or []
        for upload in uploads:
            self.abort(upload['Key'], upload['UploadId'])
        return refused


def check_digest(path, actual, expected):
    if expected and actual != expected:
        raise OffsiteError('%s: sha256 %s, manifest says %s; the local set changed or is damaged, nothing was counted '
                           'as copied. Verify it with stackops.runbooks.pg_backup_verify' % (path, actual, expected))


def lock_spec():
    return dict(
        object_lock_mode=dict(type='str', choices=['GOVERNANCE', 'COMPLIANCE']),
        object_lock_days=dict(type='int', default=0),
    )


def lock_from_params(params):
    if not params.get('object_lock_mode'):
        return None
    if int(params.get('object_lock_days') or 0) <= 0:
        raise OffsiteError('object_lock_mode %s needs object_lock_days > 0' % params['object_lock_mode'])
    until = utcnow() + datetime.timedelta(days=int(params['object_lock_days']))
    return dict(mode=params['object_lock_mode'], until=until)


def lock_args(lock):
    if not lock:
        return {}
    return dict(ObjectLockMode=lock['mode'], ObjectLockRetainUntilDate=lock['until'])


def marker_for(manifest, verification, objects, encryption, remote_size):
    return dict(
        copy_format=COPY_FORMAT, id=manifest['id'], database=manifest['database'],
        started_at=manifest['started_at'], finished_at=manifest['finished_at'],
        size_bytes=manifest['size_bytes'], remote_size_bytes=remote_size, checksum=manifest.get('checksum'),
        verified=bool((verification or {}).get('verified')), verified_at=(verification or {}).get('verified_at'),
        copied_at=isoformat(utcnow()), encryption=encryption, objects=objects,
        # An --all-databases set: remote retention keeps or deletes its group as a whole.
        group=manifest.get('group'), group_databases=manifest.get('group_databases') or [])


def copy_groups(sets):
    """Complete copies of --all-databases groups (newest first): {id, started_at, sets (ids), databases, missing,
    complete, verified}. A group is verified only when it is complete and every one of its copies is verified."""
    groups = {}
    for entry in sets:
        if not entry.get('group'):
            continue
        group = groups.setdefault(entry['group'], dict(id=entry['group'], started_at=entry['started_at'], sets=[],
                                                       databases=[], planned=set(), all_verified=True))
        group['started_at'] = min(group['started_at'], entry['started_at'])
        group['planned'].update(entry.get('group_databases') or [])
        if entry['database'] not in group['databases']:
            group['databases'].append(entry['database'])
        group['sets'].append(entry['id'])
        group['all_verified'] = group['all_verified'] and bool(entry.get('verified'))
    out = []
    for group in groups.values():
        missing = sorted(group.pop('planned') - set(group['databases']))
        group.update(databases=sorted(group['databases']), missing=missing, complete=not missing)
        group['verified'] = group.pop('all_verified') and not missing
        out.append(group)
    out.sort(key=lambda group: group['started_at'], reverse=True)
    return out


def object_name(rel, encrypted):
    return rel + ('.age' if encrypted else '')


def json_bytes(data):
    return (json.dumps(data, indent=2, sort_keys=True) + '\n').encode('utf-8')


def manifest_files(set_dir, manifest):
    """(relative name, local path, expected plaintext sha256) of everything a copy holds besides its marker."""
    entries = [(rel, os.path.join(set_dir, rel), meta['sha256'])
               for rel, meta in sorted((manifest.get('files') or {}).items())]
    entries.append((MANIFEST, os.path.join(set_dir, MANIFEST), None))
    if os.path.isfile(os.path.join(set_dir, VERIFICATION)):
        entries.append((VERIFICATION, os.path.join(set_dir, VERIFICATION), None))
    return entries
