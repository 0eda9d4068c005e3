"""Read a conf.d directory into one validated configuration, collecting every error.

Each `*.yaml` file is read in sorted order; top-level sections are id-keyed maps merged across
files (the `vigil:` section is merged key by key). A duplicate id across files is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from collector.config.directory import Unreadable, read_documents
from collector.config.models import GlobalConfig
from collector.config.tenants import TenantConfig
from collector.config.yaml_positions import PositionedDocument, render_path
from core.config import (
    COMPONENT_ID_RE,
    SinkConfig,
    SourceConfig,
    StrictModel,
    ValidationContext,
    is_tenant_id,
)
from core.errors import ConfigError, ConfigErrors, Location
from core.registry import UnknownComponentType, did_you_mean, import_ref, resolve

if TYPE_CHECKING:  # the section table imports models lazily; so does this module
    from collector.pipeline.config import PipelineConfig

DEFAULT_DATA_DIR = Path("/var/lib/vigil")

# Sections other than `vigil`: name -> how an entry is validated. "source"/"sink" entries pick
# their model through the registry by `type:`; the others name a model ("module:Class").
SECTIONS: dict[str, str] = {
    "tenants": "collector.config.tenants:TenantConfig",
    "sources": "source",
    "pipelines": "collector.pipeline.config:PipelineConfig",
    "rules": "collector.config.models:RuleSourceConfig",
    "tests": "collector.pipeline.testcases:PipelineTestConfig",
    "sinks": "sink",
    "notifiers": "notifier",
    "access": "soc.auth.config:AccessPolicy",
    "dashboards": "soc.dashboards.model:DashboardConfig",
    "integrations": "rules.integrations:IntegrationCategory",
}


@dataclass
class VigilConfig:
    """A validated configuration; components are pydantic models keyed by id."""

    settings: GlobalConfig
    sections: dict[str, dict[str, BaseModel]]
    origins: dict[tuple[str, str], Location] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @property
    def tenants(self) -> dict[str, TenantConfig]:
        return self.sections["tenants"]  # type: ignore[return-value]

    @property
    def sources(self) -> dict[str, SourceConfig]:
        return self.sections["sources"]  # type: ignore[return-value]

    @property
    def pipelines(self) -> dict[str, PipelineConfig]:
        return self.sections["pipelines"]  # type: ignore[return-value]

    @property
    def sinks(self) -> dict[str, SinkConfig]:
        return self.sections["sinks"]  # type: ignore[return-value]

    def section(self, name: str) -> dict[str, Any]:
        return self.sections.get(name, {})

    def data_dir(self, override: Path | None = None) -> Path:
        """The state directory: `--data-dir`, else `vigil.data_dir`, else /var/lib/vigil."""
        return override or self.settings.data_dir or DEFAULT_DATA_DIR


# Checks across sections (e.g. a source naming an unknown tenant), run after every entry
# validated. Later modules append to this list.
CrossCheck = Callable[[VigilConfig, "_ErrorSink"], None]
CROSS_CHECKS: list[CrossCheck] = []


Reference = tuple[str, str]  # (section, id) an error says is missing


class _ErrorSink:
    def __init__(self) -> None:
        self.errors: list[ConfigError] = []
        self.docs: dict[tuple[str, str], PositionedDocument] = {}
        # Errors about a missing (section, id): they only follow from another error when the
        # id was declared in an entry that failed or in a file that did not parse.
        self.references: list[tuple[ConfigError, Reference]] = []

    def add(self, message: str, doc: PositionedDocument | None, path: tuple[Any, ...],
            *, prefer_key: bool = False, refers_to: Reference | None = None) -> None:
        location = doc.locate(path, prefer_key=prefer_key) if doc else None
        error = ConfigError(message, location=location, path=render_path(path))
        if refers_to is None:
            self.errors.append(error)
        else:
            self.references.append((error, refers_to))

    def add_for(self, section: str, entry_id: str, rel_path: tuple[Any, ...], message: str,
                *, prefer_key: bool = False, refers_to: Reference | None = None) -> None:
        """Report an error inside an entry, located through the file that declared it;
        `refers_to` names the (section, id) it says is missing."""
        doc = self.docs.get((section, entry_id))
        self.add(message, doc, (section, entry_id, *rel_path), prefer_key=prefer_key,
                 refers_to=refers_to)


def _pydantic_errors(exc: ValidationError, model: type[BaseModel], sink: _ErrorSink,
                     doc: PositionedDocument, prefix: tuple[Any, ...]) -> None:
    for err in exc.errors(include_url=False):
        _report(err, model, sink, doc, prefix)


def _report(err: Any, model: type[BaseModel], sink: _ErrorSink, doc: PositionedDocument | None,
            prefix: tuple[Any, ...]) -> None:
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        name = str(loc[-1])
        hint = did_you_mean(name, parent.model_fields) if parent else ""
        sink.add(f"unknown key {name!r}{hint}", doc, prefix + loc, prefer_key=True)
    elif err["type"] == "missing":
        sink.add("required key is missing", doc, prefix + loc, prefer_key=True)
    else:
        sink.add(err["msg"].removeprefix("Value error, "), doc, prefix + loc)


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The nested model class that `loc` points into, for did-you-mean on unknown keys."""
    current: Any = model
    for part in loc:
        is_model = isinstance(current, type) and issubclass(current, BaseModel)
        if isinstance(part, int) or not is_model:
            continue
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = info.annotation
        for arg in getattr(current, "__args__", ()):  # Optional[Model], list[Model]
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def validate_entry(model: type[BaseModel], raw: Any, sink: _ErrorSink, doc: PositionedDocument,
                   prefix: tuple[Any, ...], context: ValidationContext) -> BaseModel | None:
    """Validate one entry against `model`, its component lists (e.g. a pipeline's steps, each
    against the model its `type:` picks) and its semantic checks; every error is reported located
    in `doc`, and the entry is None when any was found."""
    components: dict[str, list[Any]] = {}
    valid = True
    for name, kind in getattr(model, "component_lists", {}).items():
        items = raw.get(name) if isinstance(raw, dict) else None
        if not isinstance(items, list):
            continue  # absent or not a list: the model's own validation says so
        built = []
        for index, item in enumerate(items):
            item_prefix = (*prefix, name, index)
            item_model = _component_model(kind, item, sink, doc, item_prefix)
            item_validated = None
            if item_model is not None:
                item_validated = validate_entry(item_model, item, sink, doc, item_prefix, context)
            valid = valid and item_validated is not None
            built.append(item_validated)
        components[name] = built
    try:
        validated = model.model_validate(raw, context=context)
    except ValidationError as exc:
        _pydantic_errors(exc, model, sink, doc, prefix)
        return None
    if components:
        validated = validated.model_copy(update=components)
    if isinstance(validated, StrictModel):
        for loc, message in validated.semantic_errors(context):
            sink.add(message, doc, prefix + loc)
            valid = False
    return validated if valid else None


def _component_model(kind: str, raw: Any, sink: _ErrorSink, doc: PositionedDocument,
                     prefix: tuple[Any, ...]) -> type[BaseModel] | None:
    if not isinstance(raw, dict) or "type" not in raw:
        sink.add("required key 'type' is missing", doc, prefix)
        return None
    try:
        component = resolve(kind, str(raw["type"]))
    except UnknownComponentType as exc:
        sink.add(str(exc), doc, prefix + ("type",))
        return None
    return component.config_model  # type: ignore[no-any-return]


def load_config(conf_dir: Path | str, *, require_inputs: bool = False) -> VigilConfig:
    """Load and validate a conf.d directory; raises ConfigErrors listing every root problem
    (errors that only follow from one are counted on it). `require_inputs` (the daemon,
    `vigil validate`) refuses a configuration without sources or tenants unless
    `vigil.allow_empty` says that is meant."""
    conf_dir = Path(conf_dir)
    context = ValidationContext(conf_dir.resolve())
    docs, failed = read_documents(conf_dir)
    sink = _ErrorSink()
    sink.errors.extend(f.error for f in failed)

    global_raw: dict[str, Any] = {}
    global_doc: dict[str, PositionedDocument] = {}
    raw_entries: dict[str, dict[str, tuple[Any, PositionedDocument]]] = {s: {} for s in SECTIONS}
    for doc in docs:
        if doc.data is None:
            continue
        if not isinstance(doc.data, dict):
            sink.add("a configuration file must be a mapping of sections", doc, ())
            continue
        for section, body in doc.data.items():
            if section == "vigil":
                if not isinstance(body, dict):
                    sink.add("must be a mapping", doc, (section,))
                    continue
                for key, value in body.items():
                    if key in global_raw:
                        first = global_doc[key].locate(("vigil", key), prefer_key=True)
                        sink.add(f"duplicate setting, first set at {first}", doc, (section, key),
                                 prefer_key=True)
                        continue
                    global_raw[key], global_doc[key] = value, doc
                continue
            if section not in SECTIONS:
                valid = ", ".join(["vigil", *SECTIONS])
                sink.add(f"unknown section {section!r}{did_you_mean(section, SECTIONS)}; "
                         f"valid sections: {valid}", doc, (section,), prefer_key=True)
                continue
            if body is None:
                continue
            if not isinstance(body, dict):
                sink.add("must be a mapping of id -> settings", doc, (section,))
                continue
            for entry_id, raw in body.items():
                if entry_id in raw_entries[section]:
                    first = raw_entries[section][entry_id][1].locate((section, entry_id),
                                                                     prefer_key=True)
                    sink.add(f"duplicate id, first declared at {first}", doc, (section, entry_id),
                             prefer_key=True)
                    continue
                raw_entries[section][entry_id] = (raw, doc)
                sink.docs[(section, entry_id)] = doc

    settings = GlobalConfig()
    try:
        settings = GlobalConfig.model_validate(global_raw)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            found = global_doc.get(str(err["loc"][0])) if err["loc"] else None
            _report(err, GlobalConfig, sink, found, ("vigil",))
    else:
        for loc, message in settings.semantic_errors(context):
            sink.add(message, global_doc.get(str(loc[0])), ("vigil", *loc))

    sections: dict[str, dict[str, BaseModel]] = {s: {} for s in SECTIONS}
    origins: dict[tuple[str, str], Location] = {}
    broken: dict[Reference, ConfigError] = {}  # entry -> its first error
    for section, kind in SECTIONS.items():
        for entry_id, (raw, doc) in raw_entries[section].items():
            origins[(section, entry_id)] = doc.locate((section, entry_id), prefer_key=True)
            before = len(sink.errors)
            validated = _validate_section_entry(section, kind, entry_id, raw, doc, sink, context)
            if validated is not None:
                sections[section][entry_id] = validated
            elif len(sink.errors) > before:
                broken[(section, entry_id)] = sink.errors[before]

    config = VigilConfig(settings=settings, sections=sections, origins=origins,
                         files=[Path(d.file) for d in docs])
    for check in CROSS_CHECKS:
        check(config, sink)
    if require_inputs and docs and not settings.allow_empty:
        _check_inputs(config, conf_dir, sink)
    _attribute_references(sink, broken, failed)
    if sink.errors:
        raise ConfigErrors(sorted(sink.errors, key=_reading_order))
    return config


def _validate_section_entry(section: str, kind: str, entry_id: str, raw: Any,
                            doc: PositionedDocument, sink: _ErrorSink,
                            context: ValidationContext) -> BaseModel | None:
    prefix = (section, entry_id)
    if section == "tenants":
        if not is_tenant_id(entry_id):
            sink.add(f"tenant id {entry_id!r} is not a slug matching "
                     "[a-z0-9][a-z0-9_-]{0,62}", doc, prefix, prefer_key=True)
            return None
    elif not COMPONENT_ID_RE.fullmatch(entry_id):
        sink.add(f"id {entry_id!r} must match {COMPONENT_ID_RE.pattern}", doc, prefix,
                 prefer_key=True)
        return None
    if ":" in kind:
        model: type[BaseModel] | None = import_ref(kind)
    else:
        model = _component_model(kind, raw, sink, doc, prefix)
    if model is None:
        return None
    return validate_entry(model, raw, sink, doc, prefix, context)


# What a configuration without sources or tenants would do, for the refusal.
_REQUIRED_INPUTS = {
    "sources": "this daemon would collect nothing",
    "tenants": "every event would be quarantined",
}


def _check_inputs(config: VigilConfig, conf_dir: Path, sink: _ErrorSink) -> None:
    """A daemon with nothing to collect starts, logs "vigil started" and collects nothing: a
    wrong -c or an unreadable conf.d looks exactly like that, so it is an error unless
    `vigil.allow_empty` says it is meant (a host serving only the API and console)."""
    for section, consequence in _REQUIRED_INPUTS.items():
        # Declared but invalid entries have their own errors; a file that did not parse may
        # have declared some, so there this error follows from its syntax error.
        if not any(declared == section for declared, _ in sink.docs):
            error = ConfigError(f"no {section} configured: {consequence}; declare {section}, "
                                "or set vigil.allow_empty: true on a host that collects nothing "
                                "on purpose", location=Location(str(conf_dir)))
            sink.references.append((error, (section, "")))


def _attribute_references(sink: _ErrorSink, broken: dict[Reference, ConfigError],
                          failed: list[Unreadable]) -> None:
    """Report an error about a missing id only when nothing else explains it: the id declared
    in an entry that failed, or possibly in a file that did not parse, makes it a follower of
    that error ("and 84 errors that follow from it"). An empty id stands for the whole
    section."""
    for error, (section, ident) in sink.references:
        root = broken.get((section, ident))
        if root is None and not ident:
            root = next((e for (s, _), e in broken.items() if s == section), None)
        if root is None:
            root = next((f.error for f in failed
                         if f.names is None or not ident or ident in f.names), None)
        if root is None:
            sink.errors.append(error)
        else:
            root.followers += 1
    sink.references = []


def _reading_order(error: ConfigError) -> tuple[str, int, int]:
    """Errors are reported file by file, top to bottom, as a reader fixes them."""
    loc = error.location
    return (loc.file, loc.line, loc.column) if loc else ("", 0, 0)


def _check_source_tenants(config: VigilConfig, sink: _ErrorSink) -> None:
    for source_id, source in config.sources.items():
        for path, tenant in source.tenant_references():
            if tenant not in config.tenants:
                sink.add_for("sources", source_id, path,
                             f"unknown tenant {tenant!r}{did_you_mean(tenant, config.tenants)}",
                             refers_to=("tenants", tenant))


CROSS_CHECKS.append(_check_source_tenants)


def _check_dataset_schemas(config: VigilConfig, sink: _ErrorSink) -> None:
    # A lake column keeps one type within a dataset, whichever pipeline wrote the row.
    declared: dict[tuple[str, str], tuple[str, str]] = {}
    for pipeline_id, pipeline in config.pipelines.items():
        for name, field_type in pipeline.schema_.items():
            first = declared.setdefault((pipeline.dataset, name), (field_type, pipeline_id))
            if first[0] != field_type:
                sink.add_for("pipelines", pipeline_id, ("schema", name),
                             f"dataset {pipeline.dataset!r} already types {name!r} as "
                             f"{first[0]!r} (pipeline {first[1]!r})")


CROSS_CHECKS.append(_check_dataset_schemas)


def _check_notifications(config: VigilConfig, sink: _ErrorSink) -> None:
    import_ref("soc.notify.config:check_tenant_notifications")(config, sink)
    import_ref("soc.auth.config:check_access")(config, sink)


CROSS_CHECKS.append(_check_notifications)


def _check_test_sources(config: VigilConfig, sink: _ErrorSink) -> None:
    for test_id, case in config.section("tests").items():
        if case.source not in config.sources:
            sink.add_for("tests", test_id, ("source",), f"unknown source {case.source!r}"
                         f"{did_you_mean(case.source, config.sources)}",
                         refers_to=("sources", case.source))


CROSS_CHECKS.append(_check_test_sources)
