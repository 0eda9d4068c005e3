"""The SOC workspace: alerts and their lifecycle (SLA, triage, audit), notifications, users and
authentication, the `/api/v1` API and the web console, dashboards and posture.

It sits between the data packages (parsers, enrichers, rules, sinks, dashboards) and the
collector, which runs it; it reads the loaded conf.d model from `collector.config` only.
"""
