# The steps behind the README's two commands. Nothing here needs root.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint format browser htmx-self-host clean bench translations messages soak

PORT ?= 5000

## make run: set up and start the site and the mail sender with embedded defaults (PORT=5001 make run moves it).
## rsct/devserver.py runs `flask --app app setup`, then both, and stops both cleanly on Ctrl-C or SIGTERM.
run: $(VENV)/.runtime translations
	@PORT=$(PORT) exec $(BIN)/python -m rsct.devserver

## make test: set up and run the whole test suite, real browser included.
test: $(VENV)/.dev node_modules/.installed browser lint translations
	$(BIN)/python -m pytest

## make bench: the speed figures in BENCHMARKS.md, in one bounded run (under 10 minutes) on 127.0.0.1 only.
## Needs wrk, nginx, openssl and Chromium; installs Lighthouse into bench/.lighthouse. Not part of make test.
bench: $(VENV)/.dev node_modules/.installed translations
	$(BIN)/python bench/run.py

## make soak: the reliability table (RELIABILITY.md): the shipped site under load and faults, on loopback,
## bounded (about 12 minutes on 2 cores) and never part of make test. SOAK_ONLY=flaky,hostile runs some rows.
soak: $(VENV)/.dev translations
	$(BIN)/python bench/soak.py

## make lint: ruff's formatting and lint checks (make format rewrites the files).
lint: $(VENV)/.dev
	$(BIN)/ruff format --check --quiet .
	$(BIN)/ruff check --quiet .

format: $(VENV)/.dev
	$(BIN)/ruff format --quiet .
	$(BIN)/ruff check --quiet --fix .

## make translations: compile translations/*/LC_MESSAGES/messages.po into the .mo files the site reads
## (git-ignored; the site refuses to start without them). make messages: extract the English strings
## from the code and templates into translations/messages.pot and merge them into each .po file.
translations: $(VENV)/.runtime
	@$(BIN)/pybabel --quiet compile -d translations

messages: $(VENV)/.runtime
	$(BIN)/pybabel --quiet extract --width 120 --no-location -F babel.cfg -k lazy_gettext -o translations/messages.pot .
	$(BIN)/pybabel --quiet update --width 120 --no-fuzzy-matching --ignore-obsolete -i translations/messages.pot -d translations

$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

# --ignore-scripts: no package needs its install script here (vnu-jar's would download a Java when the
# system has none; the Observatory's would fetch the HSTS preload and TLD lists, which the test stubs).
node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# The browser tests use the system's Chromium when there is one, else Playwright's own download.
browser:
	@if [ -x /usr/bin/chromium ]; then echo "Browser tests use /usr/bin/chromium"; \
	else $(BIN)/python -m playwright install chromium; fi

clean:
	rm -rf $(VENV) node_modules .pytest_cache .hypothesis

## make htmx-self-host: fetch htmx.org@2.0.11 from npm, check it against the pinned SHA-384, serve it from /static.
htmx-self-host: $(VENV)/.runtime
	@tmp=$$(mktemp -d) && cd $$tmp && npm pack htmx.org@2.0.11 --silent >/dev/null && \
	  tar -xzf htmx.org-2.0.11.tgz package/dist/htmx.min.js && \
	  $(CURDIR)/$(BIN)/python $(CURDIR)/deploy/check_integrity.py package/dist/htmx.min.js && \
	  mkdir -p $(CURDIR)/static/vendor && cp package/dist/htmx.min.js $(CURDIR)/static/vendor/htmx.min.js && \
	  rm -rf $$tmp && echo "Wrote static/vendor/htmx.min.js; set FLASK_HTMX_URL=/static/vendor/htmx.min.js"
