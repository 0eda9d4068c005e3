"""Sigma detection: load rules (`load_rules`), evaluate batches (`DetectionEngine.evaluate`),
correlate per tenant (`CorrelationEngine`) and describe matches (`Match`, `RuleInfo`).

Modules: loader (files, filters, correlations), ruleset (what a load produces), cache (the
compiled-rule cache), datasets (mapping pipelines in mappings/),
compiler/ (predicates, literals, fields), engine (index and evaluation), correlation/
(resolution, windows), match (the alert record). Import from the modules; this package imports
nothing heavy.
"""
