"""Compile a processed Sigma rule's condition tree into a closure over the flat event.

`condition.compile_condition` turns pySigma's parsed condition (AND/OR/NOT over field = value
leaves) into a small IR (`ir`), merges sibling string tests on one field
(`Image|endswith: [list]` becomes one `str.endswith(tuple)`), orders AND children cheapest first
and builds closures of signature `predicate(event, lowered) -> bool`, where `lowered` maps string
fields of the event to their `.lower()` (computed once per event by the engine, shared by every
rule; only the fields the dataset's rules read lowered: a predicate lowers a string field it
does not find there itself). Alongside it computes the literals every match requires
(`anchors`, for the engine's index) and the fields the rule needs.

Modules: fields (the per-dataset field resolver and reading a field from an event), values (the
value matchers: Sigma's value types and modifiers, and their matching semantics), ir (the nodes
and the closures they build), anchors (literal anchors: their cost, those a regex requires),
condition (the condition tree to IR, simplification, `compile_condition`), predicates (the
non-string predicates built from plain data), codec (the IR as JSON for the rule cache).
Import from the modules.
"""
