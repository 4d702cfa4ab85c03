"""Assertions shared by the test modules."""

from urllib.parse import quote

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse


def assert_invalid(obj, field: str, fragment: str) -> None:
    """`full_clean()` rejects `obj` with an error on `field` only, saying `fragment`."""
    with pytest.raises(ValidationError) as excinfo:
        obj.full_clean()
    errors = excinfo.value.message_dict
    assert list(errors) == [field], errors
    assert any(fragment in message for message in errors[field]), errors


def assert_db_rejects(model, write, constraint: str) -> None:
    """`write()` (which skips validation) fails on `constraint` and stores nothing."""
    before = list(model.objects.order_by("pk").values())
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        write()
    assert list(model.objects.order_by("pk").values()) == before


def admin_url(model, view="changelist", *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def shown(response) -> set[int]:
    """Primary keys of the rows on a changelist page."""
    return {obj.pk for obj in response.context["cl"].result_list}


def assert_changelist_queries_constant(client, model, make, pinned: int, assert_max) -> None:
    """The changelist of `model` costs `pinned` queries at most, for 3 rows as for 25."""
    client.get(admin_url(model))  # warm per-process caches (content types)
    for _ in range(3):
        make()
    with CaptureQueriesContext(connection) as few:
        assert client.get(admin_url(model)).status_code == 200
    for _ in range(22):
        make()
    with assert_max(pinned) as many:
        response = client.get(admin_url(model))
    assert len(shown(response)) == 25
    assert len(many) == len(few)


def database_url() -> str:
    """The test database as a DATABASE_URL, for a process the test starts."""
    s = connection.settings_dict
    host = quote(s["HOST"], safe="") if s["HOST"].startswith("/") else s["HOST"]
    auth = s["USER"] + (f":{quote(s['PASSWORD'], safe='')}" if s.get("PASSWORD") else "")
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{s['NAME']}"
