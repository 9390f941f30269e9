"""A backup source's location, read-only: a local directory or an S3-compatible bucket.

Both list what is there (name, size, modification time, the storage's checksum)
and open one backup as a stream. Nothing here writes, renames or deletes; the
only S3 calls are listings, HEAD, GET and the bucket's settings (``storagecheck``
adds one probe, documented there).
"""

from __future__ import annotations

import configparser
import hashlib
import os
import stat as stat_mode
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterator

from ..dumps.errors import DumpError
from ..spec.backups import S3Access

S3 = "s3://"


@dataclass(frozen=True)
class Found:
    """One object or file of a location."""

    name: str                   # relative to the location (what the name template matches)
    size: int
    modified: datetime          # UTC
    checksum: str | None        # "md5:<hex>" (a plain S3 ETag), "etag:<text>" (a multipart one), "mtime:<ns>"
    version: str | None = None


class Directory:
    sizes_known = True          # a size of 0 is an empty file (a failed backup?)

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.describe = str(self.root)

    def origin(self, name: str) -> str:
        return str(self.root / name)

    def name_of(self, origin: str) -> str:
        return str(Path(origin).relative_to(self.root))

    def list(self, prefix: str = "") -> Iterator[Found]:
        if not self.root.is_dir():
            raise DumpError(f"backup directory {self.root} does not exist or is not a directory")
        start = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        for top, dirs, names in os.walk(start):
            dirs.sort()
            for file_name in sorted(names):
                path = Path(top, file_name)
                name = str(path.relative_to(self.root))
                if not name.startswith(prefix):
                    continue
                try:
                    st = path.stat()
                except OSError:
                    continue
                if stat_mode.S_ISREG(st.st_mode):
                    yield Found(name, st.st_size, datetime.fromtimestamp(st.st_mtime, timezone.utc).replace(
                        microsecond=0), f"mtime:{st.st_mtime_ns}")

    @contextmanager
    def open(self, name: str, size: int, checksum: str | None) -> Iterator[BinaryIO]:
        path = self.root / name
        try:
            handle = open(path, "rb")
        except OSError as exc:
            raise DumpError(f"cannot read the backup {path}: {exc.strerror}") from None
        with handle:
            st = os.fstat(handle.fileno())
            moved = (checksum or "").startswith("mtime:") and checksum != f"mtime:{st.st_mtime_ns}"
            if st.st_size != size or moved:
                raise DumpError(f"the backup {path} changed since it was indexed",
                                hint="run 'labmgr dumps index' again")
            yield handle


class Bucket:
    sizes_known = True

    def __init__(self, access: S3Access) -> None:
        self.access = access
        self.prefix = access.prefix
        self.describe = f"{S3}{access.bucket}/{access.prefix}"
        self.client = s3_client(access)

    def origin(self, name: str) -> str:
        return f"{S3}{self.access.bucket}/{self.prefix}{name}"

    def name_of(self, origin: str) -> str:
        return origin.removeprefix(f"{S3}{self.access.bucket}/{self.prefix}")

    def list(self, prefix: str = "") -> Iterator[Found]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.access.bucket, Prefix=self.prefix + prefix)
        with s3_errors(self.describe):
            for page in pages:
                for item in page.get("Contents", []):
                    yield Found(item["Key"][len(self.prefix):], item["Size"],
                                item["LastModified"].astimezone(timezone.utc).replace(microsecond=0),
                                etag_checksum(item.get("ETag")))

    @contextmanager
    def open(self, name: str, size: int, checksum: str | None) -> Iterator[BinaryIO]:
        """The object as a stream, refused by the storage itself if it is no longer the one indexed
        (``If-Match`` on its ETag); a plain ETag (an MD5) is checked against the bytes read."""
        request = {"Bucket": self.access.bucket, "Key": self.prefix + name}
        if checksum and checksum.split(":", 1)[0] in ("md5", "etag"):
            request["IfMatch"] = '"' + checksum.split(":", 1)[1] + '"'
        with s3_errors(f"{self.describe}{name}"):
            answer = self.client.get_object(**request)
        body = answer["Body"]
        reader = VerifiedReader(body, checksum[4:] if checksum and checksum.startswith("md5:") else None,
                            size, f"{self.describe}{name}")
        try:
            yield reader
        finally:
            body.close()


class VerifiedReader:
    """Reads through a stream, and at its end says whether size and MD5 were those indexed."""

    def __init__(self, body, md5: str | None, size: int, what: str) -> None:
        self.body, self.want, self.size, self.what = body, md5, size, what
        self.digest, self.read_bytes, self.done = hashlib.md5(usedforsecurity=False), 0, False

    def read(self, n: int = -1) -> bytes:
        try:
            data = self.body.read(n if n and n > 0 else None)
        except Exception as exc:         # the connection dropped, a timeout: one line naming the backup
            raise DumpError(f"{self.what}: reading it failed: {exc}",
                            hint="check the network to the storage and try again") from None
        if data:
            self.digest.update(data)
            self.read_bytes += len(data)
        elif not self.done:
            self.done = True
            if self.read_bytes != self.size or (self.want and self.digest.hexdigest() != self.want):
                raise DumpError(f"{self.what}: the bytes read do not match the size and checksum the "
                                "storage gave when it was indexed")
        return data

    def readable(self) -> bool:
        return True


def etag_checksum(etag: str | None) -> str | None:
    """An S3 ETag as a checksum: a plain one is the object's MD5, a multipart one ("...-N") only names it."""
    if not etag:
        return None
    text = etag.strip('"')
    return f"etag:{text}" if "-" in text else f"md5:{text}"


def credentials(access: S3Access) -> dict:
    """boto3's key arguments from ``credentials_file``; {} leaves them to the environment."""
    if access.credentials_file is None:
        return {}
    parser = configparser.ConfigParser()
    try:
        with open(Path(access.credentials_file).expanduser()) as f:
            parser.read_file(f)
        section = parser[access.profile]
        return {"aws_access_key_id": section["aws_access_key_id"].strip(),
                "aws_secret_access_key": section["aws_secret_access_key"].strip(),
                **({"aws_session_token": section["aws_session_token"].strip()}
                   if "aws_session_token" in section else {})}
    except OSError as exc:
        raise DumpError(f"cannot read the S3 credentials file {access.credentials_file}: {exc.strerror}") from None
    except (KeyError, configparser.Error) as exc:
        raise DumpError(f"{access.credentials_file}: no aws_access_key_id/aws_secret_access_key in profile "
                        f"[{access.profile}] ({exc})") from None


def s3_client(access: S3Access):
    import boto3
    from botocore.config import Config
    session = boto3.session.Session(**credentials(access))
    return session.client("s3", endpoint_url=access.endpoint, region_name=access.region or "us-east-1",
                          config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                        s3={"addressing_style": "path"}, connect_timeout=10, read_timeout=60),
                          verify=str(access.ca_file) if access.ca_file else None)


@contextmanager
def s3_errors(what: str) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "?")
        hint = {"PreconditionFailed": "the object changed since it was indexed: run 'labmgr dumps index' again",
                "AccessDenied": "the credentials given may not read it",
                "NoSuchBucket": "check the bucket's name and the endpoint",
                "NoSuchKey": "it was removed since it was indexed: run 'labmgr dumps index' again"}.get(
                    code, "check the endpoint, the region and the credentials")
        raise DumpError(f"{what}: S3 says {code}: {error.get('Message', '')}".rstrip(": "), hint=hint) from None
    except BotoCoreError as exc:
        raise DumpError(f"{what}: {exc}", hint="check the endpoint, the region and the credentials") from None
