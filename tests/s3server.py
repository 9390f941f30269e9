"""A real S3-compatible server on 127.0.0.1 for the backup-source tests: moto's server (``moto[server]``
from PyPI), started as its own process for the session and stopped after it.

IAM is enforced (``INITIAL_NO_AUTH_ACTION_COUNT``): the first three requests
make an administrator; everything after is signed, so a user's policy decides
what it may do (read-only keys really cannot delete).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from dbservers import free_port

SETUP_REQUESTS = 3        # create_user, put_user_policy, create_access_key of the administrator
READ_ONLY = ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:ListBucketVersions",
             "s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration", "s3:GetBucketPolicy"]


@dataclass
class S3Server:
    endpoint: str
    admin: dict
    directory: Path
    ca_file: Path | None = None         # the https server's certificate (its own CA)

    def client(self, service: str = "s3", keys: dict | None = None):
        import boto3
        from botocore.config import Config
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}), **(keys or self.admin),
                            verify=str(self.ca_file) if self.ca_file else None)

    def user(self, name: str, actions: list[str]) -> Path:
        """A user allowed ``actions`` on every bucket; its keys in an AWS-style credentials file."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        path = self.directory / f"{name}.ini"
        path.write_text(f"[default]\naws_access_key_id = {key['AccessKeyId']}\n"
                        f"aws_secret_access_key = {key['SecretAccessKey']}\n")
        path.chmod(0o600)
        return path


def _wait_for(port: int, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"moto's S3 server exited with {process.returncode} before it listened")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"moto's S3 server did not listen on 127.0.0.1:{port} within {seconds} s")


@contextmanager
def _serving(tls: Path | None = None):
    """moto's server with an administrator; with ``tls`` (a folder), over https with a certificate for
    ``localhost`` signed by itself (``tls/cert.pem`` is the CA file clients trust)."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_REQUESTS)}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    argv, endpoint = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], None
    if tls is not None:
        # pgBackRest checks a certificate's DNS names only (not IP addresses): the endpoint is 'localhost',
        # served on the loopback address 'localhost' resolves to first
        host = socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)[0][4][0]
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", str(tls / "key.pem"), "-out", str(tls / "cert.pem"), "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
        (tls / "cert.pem").chmod(0o644)
        argv = [sys.executable, str(Path(__file__).with_name("mototls.py")), host, str(port),
                str(tls / "cert.pem"), str(tls / "key.pem")]
        endpoint = f"https://localhost:{port}"
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="lmo-s3-") as directory:
        try:
            _wait_for(port, process)
            server = S3Server(endpoint or f"http://127.0.0.1:{port}", {}, Path(directory),
                              tls / "cert.pem" if tls else None)
            iam = server.client("iam", {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"})
            iam.create_user(UserName="admin")
            iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
            key = iam.create_access_key(UserName="admin")["AccessKey"]
            server.admin = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def s3server():
    with _serving() as server:
        yield server


@pytest.fixture(scope="session")
def s3server_tls():
    """The same server over https (pgBackRest speaks S3 only over TLS)."""
    tls = Path(tempfile.mkdtemp(prefix="lmo-tls-", dir="/var/tmp"))
    tls.chmod(0o755)        # pgBackRest runs as postgres and reads the CA file
    try:
        with _serving(tls) as server:
            yield server
    finally:
        shutil.rmtree(tls, ignore_errors=True)
