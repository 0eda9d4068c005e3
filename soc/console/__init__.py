"""The web console on the control listener: sign-in, the Security Detections queue and the alert
investigation page, rendered on the server over the same operations as /api/v1."""
