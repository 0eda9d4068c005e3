"""Pipelines: YAML-declared steps that parse, normalise, enrich and filter events per dataset."""
