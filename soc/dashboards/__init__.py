"""Dashboards: the library and conf.d `dashboards:` entries, their activation per tenant from
field coverage, panel SQL run by DuckDB inside one tenant's lake partitions, user-saved
dashboards and the posture figures."""
