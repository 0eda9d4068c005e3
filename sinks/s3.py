"""`type: s3_lake`: the Parquet lake on S3 or an S3-compatible store, for Athena, Trino, Spark
or DuckDB. Each file is written like the local lake's (same Hive layout, same
`<epoch>-<first>-<last>.parquet` names after the journal offsets) in a staging directory, then
uploaded before the sink reports it committed, so a journal position is acknowledged only once
its rows are in the bucket. A replay rewrites the same keys; files a crash left committed past
the acknowledged position are trimmed on start like the local lake's, in the bucket.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from core.aws.config import AwsConnectionConfig
from core.sink import SinkContext
from sinks.buffer import FileBuffer, FlushPolicy
from sinks.commits import COMMITTED_NAME
from sinks.lake.sink import LakeConfig, LakeSink

log = logging.getLogger(__name__)

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class S3LakeConfig(LakeConfig):
    type: Literal["s3_lake"] = "s3_lake"  # type: ignore[assignment]
    bucket: str = Field(description="bucket the lake lives in")
    prefix: str = Field("", description="key prefix of the lake, e.g. `vigil/lake/`")
    aws: AwsConnectionConfig = Field(default_factory=AwsConnectionConfig,
                                     description="region, endpoint (S3-compatible stores), "
                                     "credentials, role")
    path: Path | None = Field(None, description="local staging directory; default "
                              "<data_dir>/s3-staging/<sink id>")
    keep_local: bool = Field(False, description="keep each file in the staging directory after "
                             "the upload (a local copy of the lake)")
    flush: FlushPolicy = Field(
        default_factory=lambda: FlushPolicy(max_seconds=60.0),
        description="flush policy (here max_seconds defaults to 60: fewer, larger objects "
        "suit query engines on S3)")

    @field_validator("bucket")
    @classmethod
    def _check_bucket(cls, value: str) -> str:
        if not _BUCKET_RE.fullmatch(value) or ".." in value:
            raise ValueError(f"{value!r} is not an S3 bucket name")
        return value

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        value = value.lstrip("/")
        return value if not value or value.endswith("/") else value + "/"


class S3LakeSink(LakeSink):
    """See the module docstring."""

    config_model = S3LakeConfig  # type: ignore[assignment]
    config: S3LakeConfig  # type: ignore[assignment]

    def __init__(self, sink_id: str, config: S3LakeConfig, context: SinkContext) -> None:
        super().__init__(sink_id, config, context)
        self.root = config.path or context.data_dir / "s3-staging" / sink_id
        self.s3: Any = None
        self.uploaded = 0

    async def start(self) -> None:
        from core.aws.session import aws_client, aws_session

        session = await asyncio.to_thread(aws_session, self.config.aws, self.config.aws.region)
        self.s3 = await asyncio.to_thread(aws_client, session, "s3", self.config.aws)
        await super().start()
        log.info("lake on S3", extra={"sink": self.sink_id, "bucket": self.config.bucket,
                                      "prefix": self.config.prefix,
                                      "endpoint": self.config.aws.endpoint_url})

    def key_of(self, path: Path) -> str:
        """The object key of a staged file."""
        return self.config.prefix + path.relative_to(self.root).as_posix()

    async def write_buffer(self, buffer: FileBuffer, target: Path) -> int:
        size = await super().write_buffer(buffer, target)
        await asyncio.to_thread(self._upload, target)
        return size

    def is_environmental(self, exc: BaseException) -> bool:
        # The bucket, the credentials or the network: retried, never the rows' fault.
        return super().is_environmental(exc) or type(exc).__module__.startswith(
            ("botocore", "boto3", "s3transfer"))

    def _upload(self, path: Path) -> None:
        self.s3.upload_file(str(path), self.config.bucket, self.key_of(path))
        self.uploaded += 1
        if not self.config.keep_local:
            path.unlink()

    # -- recovery: trim what a previous run committed past the acknowledged position -------

    def recover(self, acknowledged: Callable[[str], int]) -> None:
        for entry in self.manifest.load():
            if entry.acknowledged_by(acknowledged):
                continue
            path = self.root / entry.file
            if not path.exists():
                self._download(path)
        super().recover(acknowledged)

    def _download(self, path: Path) -> None:
        from botocore.exceptions import ClientError

        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.s3.download_file(self.config.bucket, self.key_of(path), str(path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
                raise  # cannot tell what the bucket holds: do not start half-recovered

    def committed_ranges(self, directory: Path) -> list[tuple[int, int]]:
        """What the bucket holds too: files another process (a cluster worker that owned the
        tenant before) committed are not in this staging directory."""
        ranges = super().committed_ranges(directory)
        prefix = self.key_of(directory) + "/" + f"{self.epoch}-"
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.config.bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                match = COMMITTED_NAME.fullmatch(item["Key"][len(prefix):])
                if match is not None:
                    ranges.append((int(match[1]), int(match[2])))
        merged: list[tuple[int, int]] = []
        for first, last in sorted(ranges):
            if merged and first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], last))
            else:
                merged.append((first, last))
        return merged

    def trim_file(self, path: Path, keep: dict[str, int]) -> int:
        stem = path.name.partition(".")[0]
        epoch, first, _ = stem.rsplit("-", 2)
        removed = super().trim_file(path, keep)
        survivors = sorted(path.parent.glob(f"{epoch}-{first}-*.parquet"))
        for survivor in survivors:
            self._upload(survivor)
        if path not in survivors:
            self.s3.delete_object(Bucket=self.config.bucket, Key=self.key_of(path))
        return removed

    def health(self) -> dict[str, Any]:
        return {**super().health(), "bucket": self.config.bucket, "prefix": self.config.prefix,
                "uploaded_files": self.uploaded}
