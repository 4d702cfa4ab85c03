"""Writing imported seat usage (subscriptions/services/usage/write.py): one report per
namespace and day, a re-sent day replaces the day, instances of a license fold to the
highest; history, dry runs, failures; rows leave for the database in batches while the
file is still being read."""

import io

import psycopg
import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from portal.errors import DomainError
from subscriptions.models import SeatUsageReport
from subscriptions.services import usage
from subscriptions.services.usage import (
    StagedUsage,
    UsageImportResult,
    UsageRow,
    parse_usage_csv,
    usage_import,
)
from tests.factories import (
    NamespaceFactory,
    SeatUsageReportFactory,
    SelfManagedNamespaceFactory,
    UserFactory,
)
from tests.subscriptions.usage_files import (
    SAAS_HEADER,
    SM_HEADER,
    History,
    csv_file,
    days_ago,
    reports,
    run,
)

pytestmark = pytest.mark.django_db


def test_saas_import_writes_one_report_per_namespace_and_day():
    alpha, beta = NamespaceFactory(name="alpha"), NamespaceFactory(name="beta")
    day, before = days_ago(1), days_ago(2)

    result = run(SAAS_HEADER, f"alpha,{day},12", f"beta,{day},7", f"alpha,{before},11")

    assert result == UsageImportResult(created=3, replaced=0, unchanged=0, total=3)
    assert reports() == {
        ("alpha", day): (12, None, ""),
        ("beta", day): (7, None, ""),
        ("alpha", before): (11, None, ""),
    }
    assert all(r.received_at for r in SeatUsageReport.objects.all())
    # Folding usage into seats is the nightly seat refresh's job, not the import's.
    alpha.refresh_from_db()
    beta.refresh_from_db()
    assert (alpha.seats_in_use, alpha.max_seats_used, beta.seats_in_use) == (0, 0, 0)


def test_self_managed_import_keeps_instance_and_max_historical_count():
    SelfManagedNamespaceFactory(name="gitlab.acme.test", license_key="LIC-A")
    day = days_ago(1)

    result = run(SM_HEADER, f"LIC-A,inst-1,{day},40,52")

    assert (result.created, result.total) == (1, 1)
    assert reports() == {("gitlab.acme.test", day): (40, 52, "inst-1")}


def test_a_re_sent_day_replaces_the_day_instead_of_adding_one():
    NamespaceFactory(name="alpha")
    NamespaceFactory(name="beta")
    day = days_ago(1)
    run(SAAS_HEADER, f"alpha,{day},12", f"beta,{day},7")

    result = run(SAAS_HEADER, f"alpha,{day},9", f"beta,{day},7")

    assert (result.created, result.replaced, result.unchanged) == (0, 1, 1)
    assert SeatUsageReport.objects.count() == 2
    assert reports() == {("alpha", day): (9, None, ""), ("beta", day): (7, None, "")}


def test_a_re_send_also_replaces_a_report_that_was_entered_by_hand():
    report = SeatUsageReportFactory(namespace__name="alpha", date=days_ago(3), billable_users=50)

    result = run(SAAS_HEADER, f"alpha,{report.date},45")

    assert result.replaced == 1
    report.refresh_from_db()
    assert report.billable_users == 45


def test_several_instances_of_one_license_in_one_file_keep_the_highest():
    SelfManagedNamespaceFactory(name="gitlab.acme.test", license_key="LIC-A")
    day = days_ago(1)

    result = run(
        SM_HEADER,
        f"LIC-A,inst-1,{day},40,50",
        f"LIC-A,inst-2,{day},45,46",
        f"LIC-A,inst-3,{day},30,90",
    )

    assert (result.created, result.unchanged, result.total) == (1, 2, 3)
    assert reports() == {("gitlab.acme.test", day): (45, 46, "inst-2")}


@pytest.mark.parametrize(
    ("resent", "kept"),
    [
        pytest.param([("inst-2", 40, 41)], (45, 46, "inst-1"), id="other-instance-lower-ignored"),
        pytest.param([("inst-2", 45, 48)], (45, 46, "inst-1"), id="other-instance-tie-ignored"),
        pytest.param([("inst-2", 60, 61)], (60, 61, "inst-2"), id="other-instance-higher-wins"),
        pytest.param([("inst-1", 30, 47)], (30, 47, "inst-1"), id="same-instance-lower-replaces"),
        pytest.param(
            [("inst-1", 30, 47), ("inst-2", 40, 41)],
            (40, 41, "inst-2"),
            id="holder-drops-other-wins",
        ),
    ],
)
def test_a_license_day_across_files_follows_the_instance_rules(resent, kept):
    SelfManagedNamespaceFactory(name="gitlab.acme.test", license_key="LIC-A")
    day = days_ago(1)
    run(SM_HEADER, f"LIC-A,inst-1,{day},45,46")

    run(SM_HEADER, *(f"LIC-A,{instance},{day},{users},{peak}" for instance, users, peak in resent))

    assert reports() == {("gitlab.acme.test", day): kept}


def test_instances_of_one_day_are_folded_even_across_batches(monkeypatch):
    monkeypatch.setattr(usage.common, "BATCH_SIZE", 2)
    SelfManagedNamespaceFactory(name="a.test", license_key="LIC-A")
    SelfManagedNamespaceFactory(name="b.test", license_key="LIC-B")
    day = days_ago(1)

    run(
        SM_HEADER,
        f"LIC-A,inst-1,{day},10,10",
        f"LIC-A,inst-2,{day},30,30",
        f"LIC-A,inst-3,{day},20,20",
        f"LIC-B,inst-9,{day},5,5",
    )

    assert reports() == {("a.test", day): (30, 30, "inst-2"), ("b.test", day): (5, 5, "inst-9")}


def test_history_records_each_created_and_changed_report_with_reason_and_actor():
    NamespaceFactory(name="alpha")
    NamespaceFactory(name="beta")
    importer = UserFactory(username="importer")
    day = days_ago(1)
    run(SAAS_HEADER, f"alpha,{day},12", f"beta,{day},7", actor=importer, source="day1.csv")

    run(SAAS_HEADER, f"alpha,{day},15", f"beta,{day},7", source="day1-fixed.csv")

    rows = History.objects.order_by("history_id").values_list(
        "namespace__name", "billable_users", "history_type", "history_change_reason", "history_user"
    )
    assert sorted(rows) == [
        ("alpha", 12, "+", "usage import day1.csv", importer.pk),
        ("alpha", 15, "~", "usage import day1-fixed.csv", None),
        ("beta", 7, "+", "usage import day1.csv", importer.pk),
    ]
    report = SeatUsageReport.objects.get(namespace__name="alpha")
    latest = report.history.latest()
    assert (latest.id, latest.received_at) == (report.id, report.received_at)


def test_dry_run_counts_what_would_happen_and_writes_nothing():
    NamespaceFactory(name="alpha")
    NamespaceFactory(name="beta")
    day = days_ago(1)
    run(SAAS_HEADER, f"alpha,{day},12")

    result = run(SAAS_HEADER, f"alpha,{day},14", f"beta,{day},7", dry_run=True)

    assert result == UsageImportResult(created=1, replaced=1, unchanged=0, total=2, dry_run=True)
    assert reports() == {("alpha", day): (12, None, "")}
    assert History.objects.count() == 1


def test_a_failure_midway_leaves_nothing_behind(monkeypatch):
    monkeypatch.setattr(usage.common, "BATCH_SIZE", 2)
    namespaces = [NamespaceFactory() for _ in range(3)]
    day = days_ago(1)
    rows = [UsageRow(ns.id, day, 5) for ns in namespaces[:2]]
    rows.append(UsageRow(namespaces[2].id, day, -1))  # refused by the database

    with pytest.raises(IntegrityError):
        usage_import(rows=rows, kind="saas")

    assert SeatUsageReport.objects.count() == 0
    assert History.objects.count() == 0


def test_an_unknown_kind_is_refused():
    with pytest.raises(DomainError, match="Unknown usage report kind"):
        usage_import(rows=[], kind="on_prem")


def test_queries_do_not_grow_with_the_number_of_rows(django_assert_max_num_queries):
    namespaces = NamespaceFactory.create_batch(500)
    day = days_ago(1)

    def queries(count: int) -> int:
        lines = [f"{ns.name},{day},{i}" for i, ns in enumerate(namespaces[:count])]
        with CaptureQueriesContext(connection) as ctx:
            result = run(SAAS_HEADER, *lines)
        assert result.created + result.replaced == count
        return len(ctx.captured_queries)

    small = queries(10)
    SeatUsageReport.objects.all().delete()
    assert queries(500) == small
    # Reading: savepoint, staging table, COPY, checks (namespaces, duplicates, batches),
    # staging table dropped, counts, savepoint release. Writing: savepoint, advisory
    # lock, one upsert, checked table dropped, savepoint release.
    with django_assert_max_num_queries(12):
        run(SAAS_HEADER, *(f"{ns.name},{day},1" for ns in namespaces))


class LineStream(io.RawIOBase):
    """A binary stream whose bytes come from a generator, a line at a time."""

    def __init__(self, lines):
        self._lines = iter(lines)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                self._pending = next(self._lines)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size], self._pending = self._pending[:size], self._pending[size:]
        return size


def test_rows_leave_for_the_database_while_the_file_is_still_being_read(monkeypatch):
    NamespaceFactory(name="alpha")
    total = 30_000
    produced = []

    def lines():
        yield f"{SAAS_HEADER}\n".encode()
        for n in range(1, total + 1):
            line = f"alpha,{days_ago(n)},{n % 50}\n".encode()
            produced.append(len(line))
            yield line

    produced_at_write = []
    write_row = psycopg.Copy.write_row

    def spy(self, row):
        produced_at_write.append(len(produced))
        return write_row(self, row)

    monkeypatch.setattr(psycopg.Copy, "write_row", spy)

    # Unbuffered: each read gets what the generator has made.
    kind, rows = parse_usage_csv(LineStream(lines()))

    assert (kind, len(rows), len(produced_at_write)) == ("saas", total, total)
    # Every row left while the file was being read, the reading never more than a chunk
    # ahead of the rows sent: the parser holds a chunk of the file, not the file.
    ahead = max(made - sent for sent, made in enumerate(produced_at_write, start=1))
    assert ahead * min(produced) <= usage.CHUNK_SIZE < total * min(produced)
    assert usage_import(rows=rows, kind=kind).created == total


def test_staged_rows_are_imported_once():
    NamespaceFactory(name="alpha")
    kind, rows = parse_usage_csv(csv_file(SAAS_HEADER, f"alpha,{days_ago(1)},3"))
    assert isinstance(rows, StagedUsage)

    assert usage_import(rows=rows, kind=kind, dry_run=True).created == 1
    with pytest.raises(DomainError, match="imported already"):
        usage_import(rows=rows, kind=kind)
    assert SeatUsageReport.objects.count() == 0


def test_staged_rows_are_written_in_batches_that_never_split_a_day(monkeypatch):
    monkeypatch.setattr(usage.common, "BATCH_SIZE", 1)
    SelfManagedNamespaceFactory(name="a.test", license_key="LIC-A")
    SelfManagedNamespaceFactory(name="b.test", license_key="LIC-B")
    day = days_ago(1)
    kind, rows = parse_usage_csv(
        csv_file(
            SM_HEADER,
            f"LIC-B,inst-9,{day},5,5",
            f"LIC-A,inst-1,{day},10,10",
            f"LIC-A,inst-1,{days_ago(2)},7,7",
            f"LIC-A,inst-2,{day},30,30",
        )
    )

    assert rows.batches == 3
    result = usage_import(rows=rows, kind=kind)

    assert (result.created, result.unchanged, result.total) == (3, 1, 4)
    assert reports() == {
        ("a.test", day): (30, 30, "inst-2"),
        ("a.test", days_ago(2)): (7, 7, "inst-1"),
        ("b.test", day): (5, 5, "inst-9"),
    }
