"""The OpenAPI 3.1 document of /api/v1, generated from the operation table and its pydantic
models (served at /api/v1/openapi.json)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import collector
from soc.api.framework import Operation
from soc.api.models import Error

REF = "#/components/schemas/{model}"
_DESCRIPTIONS = {
    400: "invalid input", 401: "authentication required", 403: "the role does not allow this",
    404: "not found (or outside your tenants)", 409: "not possible in the alert's state",
    429: "too many attempts; retry after `Retry-After` seconds",
    503: "the server cannot do this now (see its log)",
}


def _ref(key_map: dict[Any, Any], model: type[BaseModel], mode: str) -> dict[str, Any]:
    return dict(key_map[(model, mode)])


def openapi_document(operations: list[Operation], prefix: str = "/api/v1") -> dict[str, Any]:
    inputs = {op.body for op in operations if op.body} | {op.query for op in operations
                                                          if op.query}
    outputs = {op.response for op in operations if op.response} | {Error}
    pairs: list[tuple[type[BaseModel], Any]] = [(m, "validation") for m in sorted(
        inputs, key=lambda m: m.__name__)]  # type: ignore[union-attr]
    pairs += [(m, "serialization") for m in sorted(outputs,
                                                   key=lambda m: m.__name__)]  # type: ignore
    key_map, definitions = models_json_schema(pairs, ref_template=REF)
    schemas = definitions.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item: dict[str, Any] = {
            "operationId": op.operation_id, "summary": op.summary, "tags": [op.tag],
            "security": [{"bearer": []}] if op.authenticated else [],
        }
        if op.description:
            item["description"] = op.description
        parameters = [{"name": name, "in": "path", "required": True,
                       "schema": {"type": "string", "minLength": 1, "maxLength": 200}}
                      for name in re.findall(r"{(\w+)}", op.path)]
        if op.query is not None:
            schema = schemas[_ref(key_map, op.query, "validation")["$ref"].rsplit("/", 1)[1]]
            required = set(schema.get("required", []))
            for name, prop in schema["properties"].items():
                param = {"name": name, "in": "query", "required": name in required,
                         "schema": prop}
                if prop.get("type") == "array":
                    param.update(style="form", explode=True)
                parameters.append(param)
        if parameters:
            item["parameters"] = parameters
        if op.body is not None:
            ref = _ref(key_map, op.body, "validation")
            content = {"application/json": {"schema": ref}}
            if op.form:
                content["application/x-www-form-urlencoded"] = {"schema": ref}
            item["requestBody"] = {"required": True, "content": content}
        responses: dict[str, Any] = {}
        if op.response is not None:
            responses[str(op.status)] = {
                "description": "OK",
                "content": {"application/json": {"schema": _ref(key_map, op.response,
                                                                 "serialization")}}}
        else:
            responses[str(op.status)] = {"description": "OK",
                                         "content": {op.content_type: {"schema": {}}}}
        error_ref = _ref(key_map, Error, "serialization")
        for status in op.errors:
            responses[str(status)] = {"description": _DESCRIPTIONS[status],
                                      "content": {"application/json": {"schema": error_ref}}}
        item["responses"] = responses
        paths.setdefault(prefix + op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "Vigil API", "version": collector.__version__,
                 "description": "Alerts, triage, audit, tenants, SLA reports and users. "
                 "Every result is limited to the caller's tenants."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
