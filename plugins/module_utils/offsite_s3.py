# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The S3 target: offsite_target.OffsiteTarget on boto3, one bucket and prefix on one endpoint.

Every object is sent with Content-MD5 (the server refuses corrupted transfers) and afterwards its size and ETag (the
MD5 the server computed over what it stored; for multipart uploads the MD5 of the part MD5s) are compared with the
values computed from the local bytes. A deep check reads every object back and compares sha256 digests. A multipart
upload a killed run left is resumed, reusing the parts whose MD5 and size match.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os
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
    OffsiteError, check_digest, md5_b64, multipart_etag)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import MIB
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_target import OffsiteTarget, compare
from ansible_collections.stackops.runbooks.plugins.module_utils.pipeline import CHUNK

MIN_PART = 5 * MIB  # S3's smallest part (all but the last)
AUTH_CODES = ('InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'ExpiredToken', 'InvalidToken',
              'AuthorizationHeaderMalformed', 'InvalidClientTokenId', 'UnrecognizedClientException')


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
