"""Notifications: email (SMTP) and signed webhooks, routed by the tenant's service tier."""
