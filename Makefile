# postwatch — the two first commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PW     := $(VENV)/bin/postwatch
CORPUS ?= ../shared/corpus

.PHONY: run test test-pg venv bench score docs clean help

help:
	@echo "make run    - install into $(VENV), fill an empty ./var/postwatch.db with the demo, then postwatch serve"
	@echo "make test   - install into $(VENV) and run the test suite (on PostgreSQL when POSTWATCH_DATABASE__URL names one)"
	@echo "make test-pg - the test suite on a throw-away PostgreSQL cluster (needs Debian's postgresql)"
	@echo "make bench  - run every benchmark under bench/ on SQLite and PostgreSQL; one table of figures and goals"
	@echo "              (BENCH_ARGS='--quick suppression' passes options; BENCH_POSTGRES_URL names a server)"
	@echo "make score  - score the parser on $(CORPUS), overall and per MTA/provider family"
	@echo "make docs   - build the manual (docs/, mkdocs.yml) into ./site with mkdocs build --strict"
	@echo "make clean  - remove $(VENV), ./var and ./site"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# The demo is played only into an empty store; it prints the dashboard URL and login.
run: venv
	$(PW) demo --if-empty
	@echo "Starting postwatch serve (Ctrl-C stops it) ..."
	$(PW) serve

test: venv
	$(PY) -m pytest -q

# A throw-away cluster in a temporary folder on a free loopback port, removed afterwards.
test-pg: venv
	@dir=$$(mktemp -d /tmp/postwatch-pg.XXXXXX); \
	port=$$($(PY) -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	url=$$(.ci/pg-cluster start $$dir $$port) || exit 1; \
	echo "PostgreSQL pass on $$url"; \
	POSTWATCH_DATABASE__URL=$$url $(PY) -m pytest -q; rc=$$?; \
	.ci/pg-cluster stop $$dir; rm -rf $$dir; exit $$rc

# One benchmark at a time; PostgreSQL is BENCH_POSTGRES_URL's server, or a throw-away one.
bench: venv
	$(PY) bench/run_all.py $(BENCH_ARGS)

# The whole-corpus figures, then the same per MTA/provider family and per deciding rule.
score: venv
	$(PY) $(CORPUS)/../tools/score_corpus.py $(CORPUS) --cmd "$(PW) parse --json" --show 20
	$(PY) bench/score_families.py --corpus $(CORPUS) --cmd "$(PW) parse --json"

# The manual: docs/*.md as a site in ./site (open site/index.html); any warning fails the build.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) var site
