"""The alert store: alerts, their triage lifecycle and audit trail, SLA tracking."""
