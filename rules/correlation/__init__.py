"""Sigma correlation rules (event_count, value_count, value_sum/avg/median/percentile, temporal,
temporal_ordered): `rule` resolves a correlation against the loaded rules, `engine` evaluates
it over a stream with per-tenant windows on event time. Import from the modules.
"""
