"""Component registries: the YAML `type:` name -> a lazy "module:Class" reference.

Modules are imported only when a configuration uses them, so a heavy optional dependency
(boto3, azure-eventhub) costs nothing to a deployment that does not use it.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

SOURCES: dict[str, str] = {
    "syslog_tcp": "collector.sources.syslog.source:SyslogTcpSource",
    "syslog_udp": "collector.sources.syslog.udp:SyslogUdpSource",
    "tcp_lines": "collector.sources.tcp_lines:TcpLinesSource",
    "http": "collector.sources.http.source:HttpSource",
    "s3_sqs": "collector.sources.aws.source:S3SqsSource",
    "pubsub": "collector.sources.gcp.source:PubSubSource",
    "eventhubs": "collector.sources.azure.source:EventHubsSource",
}

SINKS: dict[str, str] = {
    "parquet_lake": "sinks.lake.sink:LakeSink",
    "dead_letter": "sinks.dead_letter:DeadLetterSink",
    "alert_store": "soc.alerts.sink:AlertStoreSink",
    "s3_lake": "sinks.s3:S3LakeSink",
}

# Pipeline steps, by the module that owns each concern.
STEPS: dict[str, str] = {
    "json": "parsers.json:JsonStep",
    "rename": "parsers.normalize:RenameStep",
    "copy": "parsers.normalize:CopyStep",
    "set": "parsers.normalize:SetStep",
    "remove": "parsers.normalize:RemoveStep",
    "convert": "parsers.normalize:ConvertStep",
    "lowercase": "parsers.normalize:LowercaseStep",
    "map_values": "parsers.normalize:MapValuesStep",
    "grok": "parsers.grok.step:GrokStep",
    "regex": "parsers.regex:RegexStep",
    "kv": "parsers.kv:KvStep",
    "csv": "parsers.csv:CsvStep",
    "cef": "parsers.cef:CefStep",
    "leef": "parsers.leef:LeefStep",
    "timestamp": "parsers.timestamp:TimestampStep",
    "drop": "collector.pipeline.filters:DropStep",
    "sample": "collector.pipeline.filters:SampleStep",
    "geoip": "enrichers.geoip:GeoipStep",
    "lookup": "enrichers.lookup:LookupStep",
    "threat_intel": "enrichers.threat_intel:ThreatIntelStep",
    "nest": "parsers.nest:NestStep",
    "windows_event": "parsers.windows:WindowsEventStep",
    "decision": "parsers.ecs:DecisionStep",
    "split_user": "parsers.ecs:SplitUserStep",
    "split_url": "parsers.ecs:SplitUrlStep",
}

# Notification channels (the `notifiers:` section).
NOTIFIERS: dict[str, str] = {
    "email": "soc.notify.email:EmailChannel",
    "webhook": "soc.notify.webhook:WebhookChannel",
}

REGISTRIES: dict[str, dict[str, str]] = {"source": SOURCES, "sink": SINKS, "step": STEPS,
                                         "notifier": NOTIFIERS}


class UnknownComponentType(LookupError):
    """A `type:` that no registry entry answers to; the message lists the valid ones."""


def did_you_mean(name: str, choices: list[str] | tuple[str, ...] | Any) -> str:
    """A ` (did you mean 'x'?)` suffix when a close match exists, else an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def import_ref(ref: str) -> Any:
    """Import a "module:attribute" reference."""
    module_name, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def resolve(kind: str, type_name: str) -> Any:
    """The component class registered as `type_name` for `kind` ("source", "sink", ...)."""
    registry = REGISTRIES[kind]
    ref = registry.get(type_name)
    if ref is None:
        valid = ", ".join(sorted(registry))
        raise UnknownComponentType(
            f"unknown {kind} type {type_name!r}{did_you_mean(type_name, registry)}; "
            f"valid types: {valid}"
        )
    return import_ref(ref)
