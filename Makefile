# Two commands do all the set-up: `make run` (portal with demo data) and `make test`.
# Only Python 3.11+ and make are needed; everything else goes into .venv/ and var/.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run serve test lint stop status bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

## Run the portal with demo data: web on http://127.0.0.1:8000/, a Celery worker and beat.
run: $(STAMP)
	$(PY) -m portal.demo

## Serve the portal on production settings: migrate, collect static files, run gunicorn.
# Needs the production environment (README "Deploying"); worker and beat: see Procfile.
PROD := DJANGO_SETTINGS_MODULE=portal.settings.production

serve: $(STAMP)
	$(PROD) $(PY) manage.py migrate --noinput
	$(PROD) $(PY) manage.py collectstatic --noinput
	$(PROD) $(VENV)/bin/gunicorn --config gunicorn.conf.py

## Install what the tests need, then lint, type-check, check migrations and run the suite.
# Embedded servers this starts are stopped again at the end. mypy runs inside them too: the
# django-stubs plugin imports the test settings, which need PostgreSQL.
MYPY_PATHS := portal subscriptions approvals outbox manage.py

test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || echo "chromium not found: browser journeys skipped; install Debian's chromium"
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m portal.embedded run -- sh -c '\
	  $(PY) -m mypy $(MYPY_PATHS) \
	  && DJANGO_SETTINGS_MODULE=portal.settings.test $(PY) manage.py makemigrations --check --dry-run \
	  && $(PY) -m pytest'

lint: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

## Stop the embedded PostgreSQL and Redis (they keep running between commands).
stop: $(STAMP)
	$(PY) -m portal.embedded stop

status: $(STAMP)
	$(PY) -m portal.embedded status

clean: stop
	rm -rf var $(VENV)
