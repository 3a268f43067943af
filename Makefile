# DeliveryHub entry points. Only Python 3.11 (or another python3) with pip is needed.
#   make run    start the whole stack (web, worker, scheduler, smtpd, embedded Redis)
#   make test   run the test suite (PYTEST_ARGS to tune, DATABASE_URL / REDIS_URL respected; without REDIS_URL
#               a local Redis on 127.0.0.1:6379 if one answers, else the embedded one: deliveryhub/testing/pytest_env.py)
#   make bench  run the benchmark (intake, then delivery; bodies encrypted at rest too)
#   make bench-intake  only the intake figures (batch and single-message API, gunicorn)
#   make bench-compliance  the audit PDF and data-subject access speed targets
#   make bench-reports  monitoring: dashboards, /metrics and alert evaluation over seeded attempts (PostgreSQL)
#   make bench-campaign  import, fan-out and personalised delivery of campaigns (BENCH_DATABASE_URL: PostgreSQL too)
#   make chaos  fault scenarios against real workers on loopback, each with figures and a verdict (CHAOS_ARGS)
#   make lint   ruff, system checks and the missing-migration check

.DEFAULT_GOAL := run
SHELL := /bin/bash

VENV := .venv
PY := $(VENV)/bin/python
# Interpreter used to create the venv: $(PYTHON) if given, else python3.11, else python3.
PYTHON ?=
PYTEST_ARGS ?= -q

.PHONY: venv run test chaos bench bench-intake bench-compliance bench-campaign bench-reports bench-events lint clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@if [ ! -x $(PY) ]; then \
	  py="$(PYTHON)"; \
	  if [ -z "$$py" ]; then \
	    if python3.11 -c 'import venv' >/dev/null 2>&1; then py=python3.11; else py=python3; fi; \
	  fi; \
	  echo "Creating $(VENV) with $$py ($$($$py --version 2>&1))"; \
	  $$py -m venv $(VENV); \
	fi
	$(PY) -m pip install --disable-pip-version-check -r requirements.txt
	@touch $@

run: venv
	$(PY) manage.py run_stack

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

# Postfix ships smtp-sink and smtp-source (the raw-SMTP yardstick); installed unconfigured, so no mail daemon runs.
bench: venv
	@if [ ! -x /usr/sbin/smtp-sink ] || [ ! -x /usr/sbin/smtp-source ]; then \
	  echo "Installing Postfix for smtp-sink/smtp-source (no mail server is configured)"; \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix; \
	fi
	$(PY) manage.py bench

bench-intake: venv
	$(PY) manage.py bench --intake-only

# The compliance pack's targets: a 10,000-entry audit PDF, data-subject access with 10,000,000 attempts stored
# (PostgreSQL: BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/deliveryhub_bench, kept between runs).
bench-compliance: venv
	$(PY) manage.py bench_compliance

# Events: the sequencer, GET /api/v1/events/ p50/p95 with each filter, webhook delivery to a verifying loopback
# receiver (BENCH_EVENTS events on DATABASE_URL; use an empty database). docs/webhooks.md.
bench-events: venv
	$(PY) manage.py bench_events --events $${BENCH_EVENTS:-200000}

# Campaigns: a 1,000,000-row CSV import (SQLite, and PostgreSQL when BENCH_DATABASE_URL is set), the fan-out of a
# 1,000,000-recipient campaign, personalised delivery against transactional delivery in the same run.
bench-campaign: venv
	@if [ ! -x /usr/sbin/smtp-sink ]; then \
	  echo "Installing Postfix for smtp-sink (no mail server is configured)"; \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix; \
	fi
	$(PY) manage.py bench_campaign --messages 0  # personalised delivery: once the engine renders campaign messages

# Monitoring: 10,000,000 seeded attempts (BENCH_ATTEMPTS to change; PostgreSQL: BENCH_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/deliveryhub_bench_reports, kept between runs), then dashboards, /metrics, alerts.
BENCH_ATTEMPTS ?= 10000000
bench-reports: venv
	$(PY) manage.py bench_reports --attempts $(BENCH_ATTEMPTS)

chaos: venv  # fault scenarios on loopback against real workers (figures and a verdict each; see manage.py chaos)
	$(PY) manage.py chaos $(CHAOS_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

clean-venv:
	rm -rf $(VENV)
