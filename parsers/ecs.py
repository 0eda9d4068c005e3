"""Steps that bring vendors to one ECS vocabulary: a device's allow/deny decision as
`event.type` + `event.outcome` (`decision`), user names split from UPN and down-level forms
(`split_user`), and URLs split into `url.*` (`split_url`). The vocabularies live here once, so
every pipeline uses the same words and docs/fields.md prints them from this module.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field

from core.config import ValidationContext
from core.events import Event
from core.provenance import WrittenName
from core.step import Step, StepConfig

# A device's decision about a connection or request, as vendors write it (lower case). ECS:
# "Domain-specific actions, such as deny and allow ... are not captured in the event.outcome
# field, but rather in the event.type and/or event.action fields"; a firewall that blocked a
# connection as configured reports event.type [connection, denied] with outcome success.
ALLOWED_ACTIONS: tuple[str, ...] = (
    "accept", "accepted", "allow", "allowed", "permit", "permitted", "pass", "passed",
    "passthrough")
DENIED_ACTIONS: tuple[str, ...] = (
    "deny", "denied", "drop", "dropped", "block", "blocked", "reject", "rejected", "reset",
    "reset-both", "reset-client", "reset-server", "drop-icmp", "drop-all", "block-url",
    "sinkhole")

OUTCOME = "event.outcome"
TYPE = "event.type"

# Where the rules above come from (cited in docs/fields.md).
ECS_CATEGORIZATION_URL = ("https://www.elastic.co/guide/en/ecs/current/"
                          "ecs-using-the-categorization-fields.html")
ECS_USER_URL = "https://www.elastic.co/guide/en/ecs/current/ecs-user.html"
ECS_OBSERVER_URL = "https://www.elastic.co/guide/en/ecs/current/ecs-observer.html"

# The ECS allowed values the shipped pipelines use, with what they mean (ECS's categorisation
# field pages, shortened). A value outside these tables is not ECS (tests/pipelines check).
ECS_VALUES: dict[str, dict[str, str]] = {
    "event.kind": {
        "event": "something happened (the usual kind)",
        "alert": "the producer raised an alert (risk detections, honeypots)",
    },
    "event.category": {
        "authentication": "logins, logouts, credential checks",
        "configuration": "a device's or service's configuration was read or changed",
        "file": "a file was created, changed, accessed or deleted",
        "host": "about a host or device itself (system events, DHCP, VPN negotiation)",
        "iam": "users, groups and their rights (identity and access management)",
        "intrusion_detection": "an IDS/IPS or threat engine inspected traffic",
        "malware": "malware detection (antivirus, sandbox)",
        "network": "network connections and protocol activity",
        "process": "a process started, ended or ran a command",
        "registry": "a Windows registry change",
        "session": "a persistent session (VPN, PAM sessions)",
        "web": "web servers and web traffic",
    },
    "event.type": {
        "access": "something was accessed (a web request, a file read)",
        "allowed": "the device allowed the connection or request (see the decision table)",
        "change": "something changed",
        "connection": "a network connection",
        "creation": "something was created",
        "deletion": "something was deleted",
        "denied": "the device denied, dropped or reset it (see the decision table)",
        "end": "something ended (a session, a process, a connection)",
        "error": "an error was reported",
        "group": "about a group (with iam)",
        "info": "purely informational: no state change or decision",
        "protocol": "protocol detail (DNS, HTTP) was analysed",
        "start": "something started (a session, a process, a logon)",
        "user": "about a user account (with iam)",
    },
    "event.outcome": {
        "success": "the producer reports the action succeeded, a firewall's deny included",
        "failure": "the action failed (a failed login, an API call refused)",
        "unknown": "the producer gives no outcome for an attempt",
    },
}


class DecisionConfig(StepConfig):
    """A device's allow/deny decision in ECS terms: `event.type` gains `allowed` or `denied`
    (and `types`), `event.outcome` is `success` (the device did what it was configured to)."""

    type: Literal["decision"] = "decision"
    field: str = Field("event.action", description="the field holding the device's action")
    allowed: list[str] = Field(default_factory=list,
                               description="further actions meaning allowed (beside the shared "
                                           "vocabulary in docs/fields.md)")
    denied: list[str] = Field(default_factory=list,
                              description="further actions meaning denied")
    types: list[str] = Field(["connection"], description="event.type values added with the "
                                                         "decision (web proxies: access)")

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        return [(("field",), TYPE, False), (("field",), OUTCOME, False)]


class DecisionStep(Step):
    """`type: decision`: allowed/denied from the device's action, case-insensitively; an
    action in neither list leaves the event as it is."""

    config_model = DecisionConfig

    def __init__(self, config: DecisionConfig, context: Any) -> None:
        super().__init__(config, context)
        self.decisions = {**{a: "allowed" for a in ALLOWED_ACTIONS},
                          **{a: "denied" for a in DENIED_ACTIONS},
                          **{a.lower(): "allowed" for a in config.allowed},
                          **{a.lower(): "denied" for a in config.denied}}
        self.types = list(config.types)

    def apply(self, event: Event) -> Event:
        action = event.get(self.config.field)
        decision = self.decisions.get(str(action).lower()) if action is not None else None
        if decision is None:
            return event
        present = event.get(TYPE)
        kept = [present] if isinstance(present, str) else list(present or ())
        kept = [t for t in kept if t not in ("allowed", "denied")]
        event[TYPE] = [*kept, *(t for t in self.types if t not in kept), decision]
        event[OUTCOME] = "success"
        return event


class SplitUserConfig(StepConfig):
    """`alice@contoso.com` and `CONTOSO\\alice` into `user.name` (alice) and `user.domain`; the
    full UPN is kept in `user.email`."""

    type: Literal["split_user"] = "split_user"
    field: str = Field("user.name", description="the field holding the user as logged")
    name: str = Field("user.name", description="where the short name goes")
    domain: str = Field("user.domain", description="where the domain goes (a value already "
                                                   "there is kept)")
    upn_to: str | None = Field("user.email", description="where a UPN is kept whole (a value "
                                                         "already there is kept); null: nowhere")
    down_level_to: str | None = Field(None, description="where a `DOMAIN\\user` form is kept "
                                                        "whole; null: nowhere")

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        written: list[WrittenName] = [(("name",), self.name, False),
                                      (("domain",), self.domain, False)]
        if self.upn_to:
            written.append((("upn_to",), self.upn_to, False))
        if self.down_level_to:
            written.append((("down_level_to",), self.down_level_to, False))
        return written


def split_user(value: str) -> tuple[str, str, bool] | None:
    """(name, domain, is a UPN) of `name@domain` or `DOMAIN\\name`; None for other forms."""
    if "\\" in value:
        domain, _, name = value.partition("\\")
        if domain and name and "\\" not in name and " " not in domain:
            return name, domain, False
        return None
    name, at, domain = value.rpartition("@")
    if at and name and domain and " " not in domain and "." in domain:
        return name, domain, True
    return None


class SplitUserStep(Step):
    """`type: split_user`: ECS `user.name` is the short name, `user.domain` the directory."""

    config_model = SplitUserConfig

    def apply(self, event: Event) -> Event:
        config: SplitUserConfig = self.config
        value = event.get(config.field)
        if not isinstance(value, str):
            return event
        parts = split_user(value)
        if parts is None:
            return event
        name, domain, upn = parts
        keep = config.upn_to if upn else config.down_level_to
        if keep and keep not in event:
            event[keep] = value
        event[config.name] = name
        event.setdefault(config.domain, domain)
        return event


class SplitUrlConfig(StepConfig):
    """A URL (absolute, relative like `/a?b`, or `host:port`) into ECS `url.original`,
    `url.scheme`, `url.domain`, `url.port`, `url.path`, `url.query`, `url.fragment`."""

    type: Literal["split_url"] = "split_url"
    field: str = Field(description="the field holding the URL")
    target: str = Field("url", description="prefix of the fields written")

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        return [(("target",), self.target + ".", True)]


def url_parts(value: str) -> dict[str, Any]:
    """The ECS url.* parts present in `value` (no key for an empty part)."""
    text = value.strip()
    if "://" not in text and not text.startswith("/"):
        text = "//" + text  # authority form (`host:443`, a CONNECT's target)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return {}
    found: dict[str, Any] = {"original": value, "scheme": parts.scheme,
                             "domain": parts.hostname or "", "port": port,
                             "path": parts.path, "query": parts.query,
                             "fragment": parts.fragment}
    return {k: v for k, v in found.items() if v not in ("", None)}


class SplitUrlStep(Step):
    """`type: split_url`: a URL's parts as ECS `url.*` fields."""

    config_model = SplitUrlConfig

    def apply(self, event: Event) -> Event:
        value = event.get(self.config.field)
        if isinstance(value, str) and value:
            prefix = self.config.target
            for key, part in url_parts(value).items():
                event[f"{prefix}.{key}"] = part
        return event
