"""Reports: the weekly posture report of a tenant and the closed-incident report of an alert
resolved as true positive, rendered as HTML (mail body, console) and PDF, and mailed on a
schedule through the notification outbox."""
