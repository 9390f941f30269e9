"""A real S3-compatible server on 127.0.0.1 for the backup-source tests: moto's server (``moto[server]``
from PyPI), started as its own process for the session and stopped after it.

IAM is enforced (``INITIAL_NO_AUTH_ACTION_COUNT``): the first three requests
make an administrator; everything after is signed, so a user's policy decides
what it may do (read-only keys really cannot delete).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
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

    def client(self, service: str = "s3", keys: dict | None = None):
        import boto3
        from botocore.config import Config
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}), **(keys or self.admin))

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


@pytest.fixture(scope="session")
def s3server():
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_REQUESTS)}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="lmo-s3-") as directory:
        try:
            _wait_for(port, process)
            server = S3Server(f"http://127.0.0.1:{port}", {}, Path(directory))
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
