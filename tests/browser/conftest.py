"""Browser journeys: a real chromium (Debian's, never a downloaded one) driven by
Playwright against a live server, logging in through the login page.

Without chromium the journeys are skipped with a plain reason, except in CI (`CI=true`),
where a missing browser is a failure (`.ci/run` installs it). Each test's screenshots go
to `var/screenshots/<test name>/NN-step.png`; the folder is printed in its output.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

NOT_FOUND = "chromium not found: browser journeys skipped; install Debian's chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
TIMEOUT_MS = 15_000


def chromium_path() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def require_chromium() -> str:
    """Debian's chromium, or skip the journeys (fail them in CI, which installs it)."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{NOT_FOUND} (CI=true: .ci/run installs it)", pytrace=False)
        pytest.skip(NOT_FOUND)
    return path


@pytest.fixture
def chromium() -> str:
    return require_chromium()


# The data migrations that give the roles their groups and what each may view. A
# transactional test starts from an emptied database: they run again, as they ran.
ROLE_MIGRATIONS = (
    ("approvals.migrations.0002_roles", "create_roles"),
    ("approvals.migrations.0004_approval_workflows", "roles_view_disputes"),
    ("subscriptions.migrations.0004_roles_view_job_runs", "grant"),
    ("subscriptions.migrations.0006_qsr_disabled_for_bugs_list", "roles_view_the_list"),
)


@pytest.fixture(scope="session")
def migrated_apps():
    from django.db.migrations.loader import MigrationLoader

    # From the migration files alone (no connection): the models as the last migration has them.
    return MigrationLoader(None, ignore_no_migrations=True).project_state().apps


@pytest.fixture
def roles(transactional_db, migrated_apps) -> None:
    for module, function in ROLE_MIGRATIONS:
        getattr(importlib.import_module(module), function)(migrated_apps, None)


@pytest.fixture
def page(chromium, roles, live_server, monkeypatch) -> Iterator:
    """A fresh browser page against the live server. Playwright's sync API runs an event
    loop in this thread, so Django's guard against ORM calls from async code is lifted
    for the test (the test's own set-up calls the ORM between browser steps)."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": 1366, "height": 900}
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
            # While the loop runs, Django keeps the test's database connections apart
            # (per async context): close them here, or they outlive the test database.
            connections.close_all()


@pytest.fixture
def shot(page, request) -> Callable[[str], Path]:
    """`shot("step")` saves a full-page screenshot as NN-step.png in the test's folder."""
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    folder = SCREENSHOTS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    taken: list[Path] = []

    def take(step: str) -> Path:
        path = folder / f"{len(taken) + 1:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        taken.append(path)
        return path

    yield take
    print(f"\nscreenshots: {folder.relative_to(settings.BASE_DIR)}/ ({len(taken)})")
