"""The AWS connection that AWS sources and sinks share, and the boto3 clients built from it."""
