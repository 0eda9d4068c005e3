"""Render the field reference (docs/fields.md) from a conf.d's pipelines: the shared ECS
vocabulary they use (categorisation values, allowed/denied, observer.*, user.* splitting) and,
per dataset, the fields its pipelines write with the types their schemas declare.

`python -m collector.config.fields_reference [CONF_DIR] > docs/fields.md` (default conf.d).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from collector.config import load_config
from collector.pipeline.config import PipelineConfig
from core.config import ValidationContext
from parsers.ecs import (
    ALLOWED_ACTIONS,
    DENIED_ACTIONS,
    ECS_CATEGORIZATION_URL,
    ECS_OBSERVER_URL,
    ECS_USER_URL,
    ECS_VALUES,
    DecisionConfig,
    SplitUrlConfig,
    SplitUserConfig,
)
from parsers.normalize import MapValuesConfig, SetConfig

OBSERVER = ("observer.vendor", "observer.product", "observer.type")

HEADER = """# Field reference

Generated from the shipped pipelines (conf.d) by
`python -m collector.config.fields_reference > docs/fields.md`; do not edit by hand
(tests/collector/test_fields_reference.py fails when it is stale).

Every dataset's fields follow the Elastic Common Schema (ECS) where ECS has a name for them;
vendor fields keep the vendor's names under the dataset's prefix (`fortinet.firewall.*`,
`panw.panos.*`, `okta.*`, ...). Rules and dashboards should read the ECS names: they mean the
same thing for every vendor.
"""


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def categorisation(pipeline: PipelineConfig) -> dict[str, set[str]]:
    """The event.kind/category/type/outcome values a pipeline's steps can write."""
    found: dict[str, set[str]] = defaultdict(set)
    for step in pipeline.steps:
        if isinstance(step, SetConfig):
            for name, value in step.fields.items():
                if name in ECS_VALUES:
                    found[name].update(_values(value))
        elif isinstance(step, MapValuesConfig):
            target = step.target or step.field
            if target in ECS_VALUES:
                for value in step.values.values():
                    found[target].update(_values(value))
                if "default" in step.model_fields_set:
                    found[target].update(_values(step.default))
        elif isinstance(step, DecisionConfig):
            found["event.type"].update([*step.types, "allowed", "denied"])
            found["event.outcome"].add("success")
    return found


def observers(pipeline: PipelineConfig) -> dict[str, str]:
    """observer.vendor/product/type as the pipeline's steps set them (values set under
    conditions are alternatives: `ASA or Firepower Threat Defense`)."""
    found: dict[str, list[str]] = defaultdict(list)
    for step in pipeline.steps:
        if isinstance(step, SetConfig):
            for name in OBSERVER:
                value = step.fields.get(name)
                if value is not None and str(value) not in found[name]:
                    found[name].append(str(value))
    return {name: " or ".join(values) for name, values in found.items()}


def dataset_fields(pipelines: Iterable[PipelineConfig],
                   context: ValidationContext) -> dict[str, str]:
    """Field (or `prefix.*`) -> declared type ('' when the lake infers it)."""
    fields: dict[str, str] = {}
    for pipeline in pipelines:
        for step in pipeline.steps:
            for _, name, is_prefix in step.written_fields(context):
                key = name.rstrip(".") + ".*" if is_prefix else name
                fields.setdefault(key, "")
        for name, field_type in pipeline.schema_.items():
            fields[name] = str(field_type)
    return fields


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
              for row in rows]
    return lines


def _code(values: Iterable[str]) -> str:
    return ", ".join(f"`{v}`" for v in sorted(values))


def vocabulary(pipelines: dict[str, PipelineConfig]) -> list[str]:
    uses: dict[tuple[str, str], set[str]] = defaultdict(set)
    for pipeline in pipelines.values():
        for name, values in categorisation(pipeline).items():
            for value in values:
                uses[(name, value)].add(pipeline.dataset)
    out = ["## Shared vocabulary", "",
           "### Categorisation: event.kind, event.category, event.type, event.outcome", "",
           f"As ECS's [categorisation guide]({ECS_CATEGORIZATION_URL}) says: each field takes "
           "only ECS's allowed values, left empty when none fits (cloud API calls that are "
           "neither IAM nor authentication have no category); `event.outcome` is success or "
           "failure *from the point of view of the producer*; and \"domain-specific actions, "
           "such as deny and allow ... are not captured in the event.outcome field, but rather "
           "in the event.type and/or event.action fields\". So a firewall that blocked a "
           "connection as configured writes `event.type: [connection, denied]` with "
           "`event.outcome: success` (ECS's own first example); a failed login is "
           "`event.outcome: failure`. Query denied connections with "
           "`event.category: network AND event.type: denied`.", ""]
    for name, meanings in ECS_VALUES.items():
        out += [f"`{name}`:", ""]
        rows = [[f"`{value}`", meaning, _code(uses[(name, value)])]
                for value, meaning in meanings.items() if uses.get((name, value))]
        out += [*_table(["value", "meaning", "datasets"], rows), ""]
    out += ["### Allowed and denied (`type: decision`)", "",
            "Firewalls, proxies and DNS servers name their decision in their own words "
            "(`event.action` keeps them); the `decision` step (parsers/ecs.py) turns a "
            "known word, case-insensitively, into `event.type` `allowed` or `denied` beside "
            "`connection` (proxies: `access`, DNS: `protocol`) and sets `event.outcome: "
            "success`. Shared words:", "",
            f"- allowed: {_code(ALLOWED_ACTIONS)}", f"- denied: {_code(DENIED_ACTIONS)}", "",
            "Each pipeline adds its vendor's words:", ""]
    rows = []
    for pipeline_id, pipeline in pipelines.items():
        for step in pipeline.steps:
            if isinstance(step, DecisionConfig):
                rows.append([f"`{pipeline_id}`", f"`{step.field}`", _code(step.allowed),
                             _code(step.denied), _code(step.types)])
    out += [*_table(["pipeline", "field", "also allowed", "also denied", "types"], rows), ""]
    out += ["### observer.*", "",
            f"ECS's [observer]({ECS_OBSERVER_URL}) is the device or service that saw or "
            "decided what the event reports: firewalls, proxies, routers, network sensors, "
            "honeypots, identity providers, cloud and SaaS audit services. A host writing "
            "its own logs (Linux auth and audit, Windows event logs, web servers) is no "
            "observer: `host.*` names it. `observer.type` takes these values: `firewall`, "
            "`proxy`, `router`, `sensor`, `honeypot`, `idp` (identity provider), `cloud` "
            "(a cloud control plane's audit), `saas`, `orchestrator`.", ""]
    rows = []
    for pipeline_id, pipeline in pipelines.items():
        found = observers(pipeline)
        if found:
            rows.append([f"`{pipeline.dataset}`", f"`{pipeline_id}`",
                         *(found.get(name, "") for name in OBSERVER)])
    out += [*_table(["dataset", "pipeline", "vendor", "product", "type"], rows), ""]
    out += ["### user.*", "",
            f"ECS's [user]({ECS_USER_URL}) fields: `user.name` is the short name or login, "
            "`user.domain` the directory it belongs to, `user.email` the address, `user.id` a "
            "unique identifier. The `split_user` step (parsers/ecs.py) splits "
            "`alice@contoso.com` (a UPN or e-mail login) into `user.name: alice` and "
            "`user.domain: contoso.com`, keeping the whole in `user.email` unless a value is "
            "there, and `CONTOSO\\alice` into `user.name: alice`, `user.domain: CONTOSO`; a "
            "`user.domain` already set (Windows' TargetDomainName) is kept. Other forms "
            "(`root`, `John Smith`, `name@localhost`) are left alone. Group or count by "
            "`user.email` (or `user.name` with `user.domain`) where one name can exist in "
            "several domains.", ""]
    rows = []
    for pipeline_id, pipeline in pipelines.items():
        for step in pipeline.steps:
            if isinstance(step, SplitUserConfig):
                rows.append([f"`{pipeline.dataset}`", f"`{pipeline_id}`", f"`{step.field}`",
                             f"`{step.upn_to}`" if step.upn_to else "-",
                             f"`{step.down_level_to}`" if step.down_level_to else "-"])
    out += [*_table(["dataset", "pipeline", "split from", "UPN kept in",
                     "DOMAIN\\user kept in"], rows), ""]
    rows = []
    for pipeline_id, pipeline in pipelines.items():
        for step in pipeline.steps:
            if isinstance(step, SplitUrlConfig):
                rows.append([f"`{pipeline.dataset}`", f"`{pipeline_id}`", f"`{step.field}`"])
    out += ["### url.*", "",
            "The `split_url` step writes a URL's parts as `url.original`, `url.scheme`, "
            "`url.domain`, `url.port`, `url.path`, `url.query`, `url.fragment` (a relative "
            "URL has only path and query):", "",
            *_table(["dataset", "pipeline", "split from"], rows), ""]
    return out


def render(conf_dir: Path) -> str:
    """docs/fields.md for the pipelines of `conf_dir`."""
    config = load_config(conf_dir)
    pipelines = config.pipelines
    context = ValidationContext(conf_dir)
    by_dataset: dict[str, list[tuple[str, PipelineConfig]]] = defaultdict(list)
    for pipeline_id, pipeline in pipelines.items():
        by_dataset[pipeline.dataset].append((pipeline_id, pipeline))
    out = [HEADER, *vocabulary(pipelines), "## Datasets", "",
           "Per dataset: every field its pipelines write by name (`prefix.*`: keys taken from "
           "the input under that prefix) and the type its schema declares (empty: the lake "
           "infers it; types are string, int, float, bool, ip, timestamp, list).", ""]
    for dataset in sorted(by_dataset):
        members = by_dataset[dataset]
        fields = dataset_fields((p for _, p in members), context)
        out += [f"### `{dataset}`", "",
                "Pipelines: " + ", ".join(f"`{pid}`" for pid, _ in members) + ".", "",
                *_table(["field", "type"], ([f"`{n}`", t] for n, t in sorted(fields.items()))),
                ""]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("conf.d")))
