"""The integration categories (perimeter security, authentication and access control, ...): the
`integrations:` entry model, the shipped `integrations.yaml`, conf.d's additions and
replacements, and which categories a dataset belongs to. `vigil coverage` and the console's
integration map both read categories from here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from core.config import DATASET_RE, StrictModel

SHIPPED = Path(__file__).with_name("integrations.yaml")
SECTION = "integrations"
FRAMEWORKS = ("ISO 27001", "PCI DSS", "ENS", "GDPR", "NIST CSF", "SOX")
Framework = Literal["ISO 27001", "PCI DSS", "ENS", "GDPR", "NIST CSF", "SOX"]
Priority = Literal["high", "medium", "low"]
PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}

Text = Annotated[str, Field(min_length=1, max_length=200)]


class IntegrationCategory(StrictModel):
    """An integration category of the map: a new id adds one, a shipped id (perimeter_security,
    authentication, endpoints, network, business_applications, cloud, threat_intelligence in
    rules/integrations.yaml) replaces it."""

    name: Text = Field(description="as shown (`authentication and access control`)")
    priority: Priority = Field(description="suggested priority when onboarding a tenant")
    order: int = Field(100, ge=0, le=10_000, description="position among categories of the "
                       "same priority (smaller first)")
    value: Annotated[str, Field(min_length=1, max_length=2000)] = Field(
        description="what it is worth to security, in a sentence or three")
    examples: list[Text] = Field(default_factory=list, description="example products")
    datasets: list[str] = Field(default_factory=list, description="datasets of the category "
                                "(a dataset listed by any category belongs to those only)")
    families: list[str] = Field(default_factory=list, description="dataset families (the name "
                                "before the first dot) of the category")
    fields: list[Text] = Field(default_factory=list, description="fields whose presence in any "
                               "dataset makes the category present (`threat.enrichments."
                               "matched`)")
    frameworks: dict[Framework, list[Text]] = Field(
        default_factory=dict, description="compliance framework -> the controls it serves")

    @field_validator("datasets", "families")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not DATASET_RE.fullmatch(name):
                raise ValueError(f"{name!r} must match {DATASET_RE.pattern}")
        return value


@dataclass(frozen=True)
class CategoryMap:
    """The categories in their suggested order, and the dataset -> categories lookup."""

    categories: dict[str, IntegrationCategory]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self.categories)

    def categories_of(self, dataset: str) -> tuple[str, ...]:
        """The categories a dataset belongs to: those listing it, else those listing its
        family (none for an unknown family)."""
        exact = tuple(c for c, cat in self.categories.items() if dataset in cat.datasets)
        if exact:
            return exact
        family = dataset.partition(".")[0]
        return tuple(c for c, cat in self.categories.items() if family in cat.families)

    def categories_of_fields(self, fields: Iterable[str]) -> tuple[str, ...]:
        """The categories made present by one of these fields."""
        names = set(fields)
        return tuple(c for c, cat in self.categories.items() if names & set(cat.fields))

    def with_overrides(self, entries: Mapping[str, IntegrationCategory]) -> CategoryMap:
        """This map with conf.d's entries added (a known id is replaced)."""
        if not entries:
            return self
        return ordered({**self.categories, **entries})


def ordered(categories: Mapping[str, IntegrationCategory]) -> CategoryMap:
    return CategoryMap(dict(sorted(categories.items(), key=lambda item: (
        PRIORITY_RANK[item[1].priority], item[1].order, item[0]))))


def load_categories(path: Path = SHIPPED) -> CategoryMap:
    """Read an `integrations:` file (raises ValueError naming the entry for a bad one)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    section = data.get(SECTION) if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise ValueError(f"{path}: holds one `{SECTION}:` mapping")
    found: dict[str, IntegrationCategory] = {}
    for entry_id, raw in section.items():
        try:
            found[str(entry_id)] = IntegrationCategory.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors(include_url=False))
            raise ValueError(f"{path}: {SECTION}.{entry_id}: {problems}") from None
    return ordered(found)


@cache
def shipped() -> CategoryMap:
    """The categories shipped with Vigil, read once per process."""
    return load_categories()


def configured(entries: Mapping[str, IntegrationCategory] | None) -> CategoryMap:
    """The shipped categories with a configuration's `integrations:` entries."""
    return shipped().with_overrides(entries or {})
