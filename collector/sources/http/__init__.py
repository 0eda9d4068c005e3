"""HTTP ingest: `POST /v1/logs` (JSON, arrays, NDJSON) and Splunk HEC compatibility."""
