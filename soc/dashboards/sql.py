"""The panel SQL contract, checked with DuckDB's own parser: one SELECT, no table functions
(read_parquet, glob, query ...), and every table a dataset, a CTE or one of the views the
server builds. What this check misses, the sandbox refuses (soc/dashboards/lake.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson

from core.config import DATASET_RE

# Views the server builds besides one per dataset.
EVENTS_VIEW = "events"  # the union of the datasets that activate the dashboard
ALERTS_VIEW = "alert_store"  # the tenant's alerts from the alert store
PARTITIONS_VIEW = "lake_partitions"  # the tenant's lake partitions: dataset, date, hour, files
SPECIAL_VIEWS = frozenset({EVENTS_VIEW, ALERTS_VIEW, PARTITIONS_VIEW})
# Table functions that only make values (filling the gaps of a time series); every other one
# (read_parquet, glob, query, duckdb_settings ...) is refused.
VALUE_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})

_parser = duckdb.connect(":memory:", config={"enable_external_access": False})
_parser_lock = threading.Lock()


class PanelSqlError(ValueError):
    """The SQL breaks the panel contract (said in words for the author)."""


@dataclass(frozen=True)
class PanelTables:
    """What a checked panel reads: datasets by name and the special views."""

    datasets: frozenset[str]
    views: frozenset[str]
    columns: frozenset[str] = frozenset()  # column names the SQL refers to (last part)


def check_panel_sql(sql: str) -> PanelTables:
    """Parse `sql` with DuckDB and refuse anything but one SELECT over datasets and views."""
    with _parser_lock:
        try:
            statements = _parser.extract_statements(sql)
        except duckdb.Error as exc:
            raise PanelSqlError(f"SQL does not parse: {_first_line(exc)}") from None
        if len(statements) != 1:
            raise PanelSqlError(f"one SELECT statement, not {len(statements)}")
        if statements[0].type != duckdb.StatementType.SELECT:
            raise PanelSqlError(f"only SELECT is allowed, not {statements[0].type.name}")
        row = _parser.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()
    tree = orjson.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        raise PanelSqlError(f"only SELECT is allowed ({tree.get('error_message', 'unparsable')})")
    ctes: set[str] = set()
    tables: list[tuple[str, str, str]] = []
    columns: set[str] = set()
    _walk(tree["statements"], ctes, tables, columns)
    datasets: set[str] = set()
    views: set[str] = set()
    for catalog, schema, table in tables:
        name = f"{schema}.{table}" if schema else table
        if catalog:
            raise PanelSqlError(f"table {catalog}.{name}: name a dataset, not a catalog")
        if not schema and table.lower() in ctes:
            continue
        if not schema and table in SPECIAL_VIEWS:
            views.add(table)
        elif DATASET_RE.fullmatch(name) and not name.endswith((".parquet", ".csv", ".json")):
            datasets.add(name)
        else:
            raise PanelSqlError(f"table {name!r} is not a dataset: panels name datasets "
                                "(`linux.auth`) or the views events, alert_store, "
                                "lake_partitions, never files or paths")
    return PanelTables(frozenset(datasets), frozenset(views), frozenset(columns))


def _walk(node: Any, ctes: set[str], tables: list[tuple[str, str, str]],
          columns: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, ctes, tables, columns)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        name = function.get("function_name", "?")
        if name.lower() not in VALUE_TABLE_FUNCTIONS or function.get("schema") \
                or function.get("catalog"):
            raise PanelSqlError(f"table function {name}() is not allowed: panels read datasets "
                                "through the views the server builds")
    if kind == "COLUMN_REF" and node.get("column_names"):
        columns.add(str(node["column_names"][-1]))
    if kind == "BASE_TABLE":
        tables.append((node.get("catalog_name", ""), node.get("schema_name", ""),
                       node.get("table_name", "")))
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict):
        for entry in cte_map.get("map", []):
            ctes.add(str(entry.get("key", "")).lower())
    for value in node.values():
        if isinstance(value, dict | list):
            _walk(value, ctes, tables, columns)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
