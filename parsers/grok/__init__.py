"""Grok: pygrok's pattern library, expressions compiled to `re` (or `regex`) with dotted
capture targets, and the `grok` step."""
