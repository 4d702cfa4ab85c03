"""Without chromium the journeys are skipped with a plain reason, except in CI."""

import pytest

from tests.browser import conftest


@pytest.fixture
def no_chromium(monkeypatch):
    monkeypatch.setattr(conftest.shutil, "which", lambda name: None)
    monkeypatch.setattr(conftest.os, "access", lambda path, mode: False)


def test_without_chromium_the_journeys_are_skipped_with_a_plain_reason(no_chromium, monkeypatch):
    monkeypatch.delenv("CI", raising=False)

    with pytest.raises(pytest.skip.Exception) as skipped:
        conftest.require_chromium()

    assert str(skipped.value) == (
        "chromium not found: browser journeys skipped; install Debian's chromium"
    )


def test_in_ci_a_missing_chromium_is_a_failure(no_chromium, monkeypatch):
    monkeypatch.setenv("CI", "true")

    with pytest.raises(pytest.fail.Exception, match="chromium not found"):
        conftest.require_chromium()


def test_chromium_on_the_path_is_used(monkeypatch):
    monkeypatch.setattr(conftest.shutil, "which", lambda name: f"/opt/bin/{name}")

    assert conftest.require_chromium() == "/opt/bin/chromium"
