"""Configuration of the Azure Event Hubs source and its checkpoint store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from collector.sources.pull import BackoffConfig
from core.config import ConfigIssue, SourceConfig, StrictModel, ValidationContext


class ConnectionStringConfig(StrictModel):
    """Where a connection string (a secret) comes from; it is never written in conf.d."""

    connection_string_file: Path | None = Field(
        None, description="file holding the connection string (e.g. a systemd credential); "
        "relative to the conf.d directory")
    connection_string_env: str | None = Field(
        None, description="environment variable holding the connection string")

    @model_validator(mode="after")
    def _one_secret(self) -> ConnectionStringConfig:
        if (self.connection_string_file is None) == (self.connection_string_env is None):
            raise ValueError("give exactly one of `connection_string_file` and "
                             "`connection_string_env`")
        return self

    def secret_issues(self, context: ValidationContext) -> list[ConfigIssue]:
        if self.connection_string_file is not None:
            path = context.resolve(self.connection_string_file)
            if not path.is_file():
                return [(("connection_string_file",), f"connection string file not found: "
                         f"{path}")]
        return []

    def read(self, conf_dir: Path | None) -> str:
        """The connection string; ValueError (without the secret) when it is missing."""
        if self.connection_string_env is not None:
            value = os.environ.get(self.connection_string_env, "").strip()
            if not value:
                raise ValueError(f"environment variable {self.connection_string_env} is empty "
                                 "or not set")
            return value
        assert self.connection_string_file is not None
        path = self.connection_string_file
        if conf_dir is not None and not path.is_absolute():
            path = conf_dir / path
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read connection string file {path}: "
                             f"{exc.strerror or exc}") from None
        if not value:
            raise ValueError(f"connection string file {path} is empty")
        return value


class FileCheckpointStoreConfig(StrictModel):
    type: Literal["file"] = "file"
    path: Path | None = Field(None, description="directory; default "
                              "<data_dir>/eventhubs/<source id>")


class BlobCheckpointStoreConfig(ConnectionStringConfig):
    """Checkpoints and partition ownership in Azure Blob Storage, shared by several daemons
    reading the same consumer group (azure-eventhub-checkpointstoreblob-aio)."""

    type: Literal["blob"] = "blob"
    container: str = Field(description="blob container (created beforehand)")


CheckpointStoreConfig = Annotated[FileCheckpointStoreConfig | BlobCheckpointStoreConfig,
                                  Field(discriminator="type")]


class EventHubsSourceConfig(SourceConfig):
    """`type: eventhubs`: every partition of an Event Hub for one consumer group (Azure
    diagnostic settings and activity log export: a `records` array per event); a partition's
    checkpoint is written only after its events are journaled."""

    type: Literal["eventhubs"] = "eventhubs"
    eventhub_name: str = Field(min_length=1, description="the Event Hub (entity) name")
    connection: ConnectionStringConfig = Field(
        description="namespace or hub connection string (Shared Access Policy with Listen)")
    consumer_group: str = Field("$Default", min_length=1,
                                description="consumer group; give Vigil one of its own")
    checkpoint_store: CheckpointStoreConfig = Field(
        default_factory=FileCheckpointStoreConfig,
        description="`{type: file}` (default: in the data directory, one daemon per consumer "
        "group) or `{type: blob, container, connection_string_file|_env}`")
    dataset: str = Field("azure.eventhub", description="dataset events have until a pipeline "
                         "assigns one (activity and sign-in records get theirs from the "
                         "identity pipelines)")
    format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: JSON (a `records` array is split into its records), else "
        "text; json: non-JSON kept marked; text: the body as `message`")
    starting_position: Literal["earliest", "latest"] = Field(
        "earliest", description="where a partition without a checkpoint starts")
    max_batch_size: int = Field(300, ge=1, le=5000, description="events per callback")
    max_wait_seconds: float = Field(5.0, gt=0, description="longest wait for a batch to fill")
    prefetch: int = Field(300, ge=1, description="events the client buffers per partition")
    load_balancing_interval_seconds: float = Field(
        10.0, ge=1, description="how often partition ownership is balanced and claimed")
    backoff: BackoffConfig = Field(default_factory=BackoffConfig,
                                   description="delays after errors (per partition)")

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        issues = [(("connection", *path), message)
                  for path, message in self.connection.secret_issues(context)]
        if isinstance(self.checkpoint_store, BlobCheckpointStoreConfig):
            issues += [(("checkpoint_store", *path), message)
                       for path, message in self.checkpoint_store.secret_issues(context)]
        return issues
