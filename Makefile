# The two commands a new user types: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench-api bench-start bench-proxy bench-sources bench-usage bench-usage-turn bench-webhooks bench-code-search clean

$(STAMP): pyproject.toml
	@python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "notebooks needs Python 3.11 or newer as python3"; exit 1; }
	@# A venv made half-way (no pip, e.g. without Debian's python3-venv) is made again.
	test -x $(VENV)/bin/pip || { rm -rf $(VENV) && python3 -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/notebooks up

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

bench-api: $(STAMP)
	$(PY) bench/api.py

bench-start: $(STAMP)
	$(PY) bench/start.py

bench-proxy: $(STAMP)
	$(PY) bench/proxy.py

bench-sources: $(STAMP)
	$(PY) bench/sources.py

bench-usage: $(STAMP)
	$(PY) bench/usage.py

bench-usage-turn: $(STAMP)
	$(PY) bench/usage_turn.py

bench-webhooks: $(STAMP)
	$(PY) bench/webhook_trigger.py

bench-code-search: $(STAMP)
	$(PY) bench/code_search.py

clean:
	rm -rf $(VENV) .pytest_cache
