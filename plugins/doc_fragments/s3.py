# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """Options of module_utils/offsite_target.py s3_spec(): one S3-compatible target and its credentials (type=s3)."""

    DOCUMENTATION = r'''
options:
  bucket:
    description: Bucket holding the copies (type=s3, where it is required). It must exist.
    type: str
  prefix:
    description: Key prefix below which every copy lives as C(<prefix>/<backup id>/). Use one prefix per host.
    type: str
    default: ''
  endpoint_url:
    description: URL of an S3-compatible server (MinIO, SeaweedFS, Ceph, ...). Omit for AWS S3.
    type: str
  region:
    description: Region of the bucket; without it boto3 uses E(AWS_DEFAULT_REGION) or the profile's region.
    type: str
  path_style:
    description: Address the bucket in the path (C(https://host/bucket/key)) instead of the host name.
    type: bool
    default: false
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
  ca_bundle:
    description: CA bundle to verify the server's certificate with (a self-hosted server with a private CA).
    type: path
  access_key:
    description:
      - Access key id. Without it boto3's standard chain applies (E(AWS_ACCESS_KEY_ID), O(profile),
        O(credentials_file), instance roles).
    type: str
    aliases: [aws_access_key_id]
  secret_key:
    description: Secret access key. Never logged nor written anywhere by the module.
    type: str
    aliases: [aws_secret_access_key]
  session_token:
    description: Session token of temporary credentials.
    type: str
    aliases: [aws_session_token]
  profile:
    description: Profile of the AWS credentials/config files to use.
    type: str
  credentials_file:
    description: AWS shared credentials file to read instead of C(~/.aws/credentials).
    type: path
  part_size_mib:
    description: Multipart part size in MiB (at least 5); files up to one part are sent in one request.
    type: int
    default: 32
  max_concurrency:
    description: Parts transferred at the same time.
    type: int
    default: 4
requirements:
  - boto3 on the managed host
'''

    # Options of module_utils/offsite.py lock_spec(), for the modules that upload (S3 targets only).
    OBJECT_LOCK = r'''
options:
  object_lock_mode:
    description: S3 Object Lock mode for the new objects (the bucket must have Object Lock enabled).
    type: str
    choices: [GOVERNANCE, COMPLIANCE]
  object_lock_days:
    description: Days the new objects stay locked with O(object_lock_mode).
    type: int
    default: 0
'''
