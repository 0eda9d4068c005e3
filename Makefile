# Vigil: `make run` and `make test` work on a fresh clone (they create .venv first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONF ?= conf.d
DATA ?= ./var

.PHONY: venv run test test-all bench bench-bare lint validate clean docs

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[aws,gcp,azure,dev]'
	touch $(STAMP)

run: venv
	@echo "vigil: config $(CONF), data under $(DATA)"
	@echo "  send a test event:   logger -n 127.0.0.1 -P 5514 -T 'hello from logger'"
	@echo "  events land in:      $(DATA)/lake/<dataset>/tenant=<id>/date=YYYY-MM-DD/hour=HH/*.parquet"
	@echo "  query them:          $(BIN)/python -c \"import duckdb; print(duckdb.sql(\\\"SELECT * FROM read_parquet('$(DATA)/lake/**/*.parquet', hive_partitioning=true, union_by_name=true)\\\"))\""
	@echo "  alerts land in:      $(DATA)/alerts.db (and the lake's alerts dataset); try 12 failed"
	@echo "                       SSH logins: for i in \$$(seq 12); do logger -n 127.0.0.1 -P 5514 -T -t sshd 'Failed password for root from 203.0.113.9 port 22 ssh2'; done"
	@echo "                       then: $(BIN)/vigil sla report -c $(CONF) --data-dir $(DATA)"
	@echo "  dead letters:        $(DATA)/dlq/  ($(BIN)/vigil dlq list -c $(CONF) --data-dir $(DATA))"
	@echo "  metrics and health:  curl 127.0.0.1:9580/metrics  |  curl 127.0.0.1:9580/readyz"
	@echo "  web console:         http://127.0.0.1:9580/  (Security Detections queue, investigation)"
	@echo "  first user (no mail server needed; in another terminal, then open the printed link):"
	@echo "                       $(BIN)/vigil users add admin --email admin@example.com --role platform_admin --show-enrollment -c $(CONF) --data-dir $(DATA)"
	@echo "                       scan the QR code with an authenticator app, open the activation link, then sign in at http://127.0.0.1:9580/"
	@echo "  stop with Ctrl-C (SIGINT drains and flushes like SIGTERM)"
	$(BIN)/vigil validate -c $(CONF)
	exec $(BIN)/vigil run -c $(CONF) --data-dir $(DATA)

test: venv
	$(BIN)/lint-imports
	$(BIN)/pytest -q --durations=20  # the slowest, to keep CI under 30 min

test-all: venv
	$(BIN)/pytest -q -m ''

bench: venv
	$(BIN)/python -m benchmarks.bench_suite

# The bare path alone (TCP syslog -> lake, no pipelines), beside syslog-ng.
bench-bare: venv
	$(BIN)/python -m benchmarks.bench_e2e

lint: venv
	$(BIN)/ruff check core collector parsers enrichers rules sinks dashboards soc benchmarks tests
	$(BIN)/mypy core collector parsers enrichers rules sinks dashboards soc

validate: venv
	$(BIN)/vigil validate -c $(CONF)

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache

docs: venv
	$(BIN)/python -m collector.config.reference > docs/configuration.md
