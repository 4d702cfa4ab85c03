import csv
import io
from datetime import timedelta

import psycopg
import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.errors import DomainError
from subscriptions.models import SeatUsageReport
from subscriptions.services import usage
from subscriptions.services.usage import (
    LINE_MAX_LENGTH,
    StagedUsage,
    UsageImportError,
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

pytestmark = pytest.mark.django_db

SAAS_HEADER = "namespace,date,billable_users"
SM_HEADER = "license_key,instance_id,date,billable_users,max_historical_user_count"
History = SeatUsageReport.history.model


def days_ago(n: int):
    return timezone.localdate() - timedelta(days=n)


def csv_file(*lines: str) -> io.StringIO:
    return io.StringIO("\n".join(lines) + "\n")


def run(*lines: str, actor=None, source="usage.csv", dry_run=False) -> UsageImportResult:
    kind, rows = parse_usage_csv(csv_file(*lines))
    return usage_import(rows=rows, kind=kind, actor=actor, source=source, dry_run=dry_run)


def reports():
    """What the import left, as a user would read it in the admin list."""
    return {
        (r.namespace.name, r.date): (r.billable_users, r.max_historical_user_count, r.instance_id)
        for r in SeatUsageReport.objects.select_related("namespace")
    }


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


def test_a_file_with_bad_lines_reports_every_line_and_imports_nothing():
    NamespaceFactory(name="alpha")
    NamespaceFactory(name="beta")
    SelfManagedNamespaceFactory(name="self.test", license_key="LIC-A")
    existing = SeatUsageReportFactory(namespace__name="gamma", date=days_ago(1), billable_users=3)
    day, tomorrow = days_ago(1), days_ago(-1)
    bad = csv_file(
        SAAS_HEADER,
        f"alpha,{day},12",  # 2: good, still not imported
        f"nobody,{day},5",  # 3
        "beta,2026-13-01,5",  # 4
        "beta,,5",  # 5
        "beta,01/02/2026,5",  # 6
        f"beta,{days_ago(2)},-4",  # 7
        f"beta,{days_ago(3)},4.5",  # 8
        f"beta,{days_ago(4)},many",  # 9
        f"beta,{days_ago(5)},5,extra",  # 10
        f"beta,{tomorrow},5",  # 11
        f"alpha,{day},13",  # 12
        f"self.test,{day},1",  # 13: a self-managed name is no SaaS namespace
        f"gamma,{day},4",  # 14: good, still not imported
        f"ghost,{tomorrow},-1",  # 15: several reasons on one line
        f"beta,{days_ago(6)},\uff11\uff12",  # 16: full-width digits
    )

    with pytest.raises(UsageImportError) as caught:
        parse_usage_csv(bad)

    negative = "negative billable_users -1"
    assert caught.value.problems == [
        (3, "unknown namespace 'nobody'"),
        (4, "bad date '2026-13-01' (expected YYYY-MM-DD)"),
        (5, "missing date"),
        (6, "bad date '01/02/2026' (expected YYYY-MM-DD)"),
        (7, "negative billable_users -4"),
        (8, "billable_users '4.5' is not a whole number"),
        (9, "billable_users 'many' is not a whole number"),
        (10, "expected 3 columns, got 4"),
        (11, f"date {tomorrow} is in the future"),
        (12, "duplicate of line 2 (same namespace and date)"),
        (13, "unknown namespace 'self.test'"),
        (15, f"unknown namespace 'ghost'; date {tomorrow} is in the future; {negative}"),
        (16, "billable_users '\uff11\uff12' is not a whole number"),
    ]
    assert isinstance(caught.value, DomainError)
    message = caught.value.message
    assert message.startswith("The file was not imported (13 bad lines):\n")
    assert "line 7: negative billable_users -4" in message.splitlines()
    assert SeatUsageReport.objects.count() == 1
    existing.refresh_from_db()
    assert existing.billable_users == 3


def test_a_self_managed_file_with_bad_lines_reports_every_line():
    SelfManagedNamespaceFactory(license_key="LIC-A")
    day = days_ago(1)
    bad = csv_file(
        SM_HEADER,
        f"LIC-A,inst-1,{day},40,50",  # 2
        f"LIC-Z,inst-1,{day},40,50",  # 3
        f"LIC-A,inst-1,{day},41,50",  # 4
        f"LIC-A,inst-2,{day},40,-1",  # 5
        f"LIC-A,,{days_ago(2)},40,50",  # 6
        f",inst-1,{days_ago(3)},40,",  # 7
        f"LIC-A,{'x' * 65},{days_ago(4)},40,50",  # 8
        f"LIC-A,inst-1,{day},40",  # 9
    )

    with pytest.raises(UsageImportError) as caught:
        parse_usage_csv(bad)

    assert caught.value.problems == [
        (3, "unknown license key 'LIC-Z'"),
        (4, "duplicate of line 2 (same license key and instance and date)"),
        (5, "negative max_historical_user_count -1"),
        (6, "missing instance_id"),
        (7, "missing license key; missing max_historical_user_count"),
        (8, "instance_id longer than 64 characters"),
        (9, "expected 5 columns, got 4"),
    ]
    assert SeatUsageReport.objects.count() == 0


# -- implausible counts (the ledger stays exact when data is bad) -------------------------

BOUND = 1_000_000  # USAGE_MAX_BILLABLE_USERS by default


def above(count, column="billable_users", bound=BOUND) -> str:
    return f"{column} {count} is above the limit {bound} (USAGE_MAX_BILLABLE_USERS)"


def test_the_largest_integer_as_a_count_is_a_bad_line_and_the_file_imports_nothing():
    NamespaceFactory(name="alpha")
    NamespaceFactory(name="beta")
    existing = SeatUsageReportFactory(namespace__name="gamma", date=days_ago(2), billable_users=3)
    day = days_ago(1)

    with pytest.raises(UsageImportError) as caught:
        parse_usage_csv(
            csv_file(
                SAAS_HEADER,
                f"alpha,{day},12",
                f"beta,{day},2147483647",  # 3: fits an integer column, not the ledger
                f"gamma,{existing.date},4",
            )
        )

    assert caught.value.problems == [(3, above(2147483647))]
    assert f"line 3: {above(2147483647)}" in caught.value.message.splitlines()
    assert SeatUsageReport.objects.count() == 1
    existing.refresh_from_db()
    assert existing.billable_users == 3


def test_a_count_at_the_bound_is_imported_and_one_above_is_rejected():
    NamespaceFactory(name="alpha")
    SelfManagedNamespaceFactory(name="gitlab.acme.test", license_key="LIC-A")
    day = days_ago(1)

    run(SAAS_HEADER, f"alpha,{day},{BOUND}")
    run(SM_HEADER, f"LIC-A,inst-1,{day},{BOUND},{BOUND}")

    assert reports() == {
        ("alpha", day): (BOUND, None, ""),
        ("gitlab.acme.test", day): (BOUND, BOUND, "inst-1"),
    }
    with pytest.raises(UsageImportError) as caught:
        parse_usage_csv(
            csv_file(
                SM_HEADER,
                f"LIC-A,inst-1,{days_ago(2)},{BOUND + 1},{BOUND + 1}",  # 2
                f"LIC-A,inst-1,{days_ago(3)},{BOUND},{BOUND + 1}",  # 3
                f"LIC-A,inst-1,{days_ago(4)},{BOUND},0{BOUND}",  # 4: leading zero, fine
            )
        )
    assert caught.value.problems == [
        (2, f"{above(BOUND + 1)}; {above(BOUND + 1, 'max_historical_user_count')}"),
        (3, above(BOUND + 1, "max_historical_user_count")),
    ]
    assert SeatUsageReport.objects.count() == 2


def test_a_count_too_long_to_read_as_a_number_is_a_bad_line():
    NamespaceFactory(name="alpha")
    digits = "9" * 5000  # int() refuses strings this long

    with pytest.raises(UsageImportError) as caught:
        parse_usage_csv(csv_file(SAAS_HEADER, f"alpha,{days_ago(1)},{digits}"))

    assert caught.value.problems == [(2, above(digits))]


def test_a_max_historical_count_below_the_billable_users_is_a_bad_line():
    SelfManagedNamespaceFactory(name="gitlab.acme.test", license_key="LIC-A")
    day = days_ago(1)

    with pytest.raises(UsageImportError) as caught:
        parse_usage_csv(
            csv_file(
                SM_HEADER,
                f"LIC-A,inst-1,{day},40,40",  # 2: equal is fine
                f"LIC-A,inst-1,{days_ago(2)},40,39",  # 3
                f"LIC-A,inst-2,{days_ago(3)},7,x",  # 4: no second complaint
            )
        )

    assert caught.value.problems == [
        (3, "max_historical_user_count 39 is below billable_users 40"),
        (4, "max_historical_user_count 'x' is not a whole number"),
    ]
    assert SeatUsageReport.objects.count() == 0


def test_the_bound_is_the_usage_max_billable_users_setting(settings):
    NamespaceFactory(name="alpha")
    day = days_ago(1)
    settings.USAGE_MAX_BILLABLE_USERS = 500

    with pytest.raises(UsageImportError) as caught:
        parse_usage_csv(csv_file(SAAS_HEADER, f"alpha,{day},501"))
    assert caught.value.problems == [(2, above(501, bound=500))]

    run(SAAS_HEADER, f"alpha,{day},500")
    assert reports() == {("alpha", day): (500, None, "")}


@pytest.mark.parametrize(
    "header",
    ["namespace,day,billable_users", "license_key,date,billable_users", "hello world"],
)
def test_an_unknown_header_is_one_clear_error(header):
    NamespaceFactory(name="alpha")

    with pytest.raises(UsageImportError) as caught:
        parse_usage_csv(csv_file(header, f"alpha,{days_ago(1)},3"))

    [(line, reason)] = caught.value.problems
    assert line == 1
    assert reason.startswith(f"unknown header {header.lower()!r}; expected ")
    assert SAAS_HEADER in reason and SM_HEADER in reason


def test_headers_are_recognised_whatever_the_case_spacing_or_bom():
    NamespaceFactory(name="alpha")

    upload = f"\ufeffNamespace, Date ,BILLABLE_USERS\r\nalpha,{days_ago(1)},3\r\n".encode()

    kind, rows = parse_usage_csv(io.BytesIO(upload))

    assert kind == "saas"
    assert [(r.date, r.billable_users) for r in rows] == [(days_ago(1), 3)]


def test_a_header_only_file_imports_nothing_and_an_empty_one_is_an_error():
    assert parse_usage_csv(csv_file(SM_HEADER)) == ("self_managed", [])
    with pytest.raises(UsageImportError, match="the file is empty"):
        parse_usage_csv(io.StringIO(""))


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


# -- unreadable input: named on its own line, whatever the buffering ----------------------

NOT_UTF8 = "unreadable: is not UTF-8 text (byte 0xE9 at column 4)"  # the é of b"caf\xe9"
TOO_LONG = f"unreadable: a field is longer than {csv.field_size_limit()} characters"


def usage_bytes(*lines: str | bytes, newline: bool = True) -> bytes:
    """A file of `lines` (str as UTF-8, bytes as they are), "\\n" after each line but, with
    newline=False, the last."""
    data = b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines)
    return data + b"\n" if newline else data


def alpha_lines(count: int) -> list[str]:
    """`count` good lines of one namespace, one day each (line n+1 is n days ago)."""
    return [f"alpha,{days_ago(n)},{n % 50}" for n in range(1, count + 1)]


def problems_of(data: bytes) -> list[tuple[int, str]]:
    with pytest.raises(UsageImportError) as caught:
        parse_usage_csv(io.BytesIO(data))
    return caught.value.problems


@pytest.mark.parametrize(
    ("line", "total", "newline"),
    [
        pytest.param(3, 5, True, id="line-3"),
        pytest.param(5001, 6000, True, id="line-5001"),
        pytest.param(8000, 8000, False, id="last-line-without-newline"),
    ],
)
def test_a_byte_that_is_not_utf8_is_reported_on_its_line(line, total, newline):
    NamespaceFactory(name="alpha")
    existing = SeatUsageReportFactory(namespace__name="gamma", date=days_ago(1), billable_users=3)
    lines: list[str | bytes] = [SAAS_HEADER, *alpha_lines(total - 1)]
    lines[line - 1] = f"caf\xe9,{days_ago(1)},4".encode("latin-1")

    assert problems_of(usage_bytes(*lines, newline=newline)) == [(line, NOT_UTF8)]
    assert SeatUsageReport.objects.count() == 1
    existing.refresh_from_db()
    assert existing.billable_users == 3


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64])
def test_the_line_of_a_bad_byte_does_not_depend_on_how_the_file_is_read(monkeypatch, chunk_size):
    monkeypatch.setattr(usage.lines, "CHUNK_SIZE", chunk_size)
    NamespaceFactory(name="alpha")
    NamespaceFactory(name="café")  # UTF-8 split across reads is still good text
    day = days_ago(1)
    data = usage_bytes(
        SAAS_HEADER,  # 1
        f"café,{day},1",  # 2
        f"alpha,{day},2",  # 3
        f"caf\xe9,{days_ago(2)},3".encode("latin-1"),  # 4
        f"alpha,{days_ago(2)},-4",  # 5: still read, and listed
    )

    assert problems_of(data) == [(4, NOT_UTF8), (5, "negative billable_users -4")]

    _, rows = parse_usage_csv(io.BytesIO(usage_bytes(SAAS_HEADER, f"café,{day},1")))
    assert [(r.date, r.billable_users) for r in rows] == [(day, 1)]


@pytest.mark.parametrize("blank_lines", [0, 2])
def test_a_bad_byte_in_the_header_is_reported_on_the_header_line(blank_lines):
    header = SAAS_HEADER.replace("date", "dat\xe9").encode("latin-1")
    data = usage_bytes(*[""] * blank_lines, header, f"alpha,{days_ago(1)},3")

    [(line, reason)] = problems_of(data)

    assert (line, reason) == (
        blank_lines + 1,
        "unreadable: is not UTF-8 text (byte 0xE9 at column 14)",
    )


def test_a_latin1_file_is_rejected_with_each_line_that_is_not_utf8():
    for name in ("alpha", "zürich", "brasília"):
        NamespaceFactory(name=name)
    day = days_ago(1)
    lines = [SAAS_HEADER, f"alpha,{day},1", f"zürich,{day},2", f"alpha,{days_ago(2)},3"]
    text = "\n".join([*lines, f"brasília,{day},4", ""])

    assert problems_of(text.encode("latin-1")) == [
        (3, "unreadable: is not UTF-8 text (byte 0xFC at column 2)"),
        (5, "unreadable: is not UTF-8 text (byte 0xED at column 5)"),
    ]
    assert SeatUsageReport.objects.count() == 0
    # The same file in UTF-8 imports.
    kind, rows = parse_usage_csv(io.BytesIO(text.encode()))
    assert usage_import(rows=rows, kind=kind).created == 4


@pytest.mark.parametrize(
    ("line", "total", "newline"),
    [
        pytest.param(3, 5, True, id="line-3"),
        pytest.param(5001, 6000, True, id="line-5001"),
        pytest.param(6000, 6000, False, id="last-line-without-newline"),
    ],
)
@pytest.mark.parametrize("as_text", [False, True], ids=["bytes", "text"])
def test_a_field_over_the_limit_is_reported_on_its_line(line, total, newline, as_text):
    NamespaceFactory(name="alpha")
    limit = csv.field_size_limit()
    lines = [SAAS_HEADER, *alpha_lines(total - 1)]
    lines[line - 1] = f"{'a' * (limit + 1)},{days_ago(1)},3"
    if line < total:
        lines[line] = f"alpha,{days_ago(line)},-4"  # the line after it is read too
    data = usage_bytes(*lines, newline=newline)

    with pytest.raises(UsageImportError) as caught:
        parse_usage_csv(io.StringIO(data.decode()) if as_text else io.BytesIO(data))

    expected = [(line, TOO_LONG)]
    if line < total:
        expected.append((line + 1, "negative billable_users -4"))
    assert caught.value.problems == expected
    assert SeatUsageReport.objects.count() == 0


def test_a_field_at_the_limit_is_read():
    limit = csv.field_size_limit()

    problems = problems_of(usage_bytes(SAAS_HEADER, f"{'a' * limit},{days_ago(1)},3"))

    assert problems == [(2, f"unknown namespace {'a' * limit!r}")]


def test_a_line_over_the_line_limit_is_reported_and_not_kept():
    NamespaceFactory(name="alpha")
    day = days_ago(1)
    # Fields under the csv limit, but a line no usage file has: a file without line
    # breaks, say.
    fields = ",".join(["x" * 1000] * (LINE_MAX_LENGTH // 1000 + 1))
    data = usage_bytes(SAAS_HEADER, f"alpha,{day},1", fields, f"alpha,{day},2")

    assert problems_of(data) == [
        (3, f"unreadable: line longer than {LINE_MAX_LENGTH} bytes"),
        (4, "duplicate of line 2 (same namespace and date)"),
    ]


def test_a_nul_character_is_a_bad_line_not_a_database_error():
    NamespaceFactory(name="alpha")

    problems = problems_of(usage_bytes(SAAS_HEADER, f"al\x00pha,{days_ago(1)},1"))

    assert problems == [(2, "unreadable: contains a NUL character")]


def test_line_endings_are_counted_as_lines_whatever_the_reads(monkeypatch):
    NamespaceFactory(name="alpha")
    day = days_ago(1)
    lines = [SAAS_HEADER, f"alpha,{day},1", f"nobody,{day},2", f"alpha,{days_ago(2)},-3"]
    for chunk_size in (1, 2, 5, 1 << 16):
        monkeypatch.setattr(usage.lines, "CHUNK_SIZE", chunk_size)
        for ending in ("\n", "\r\n", "\r"):
            data = ending.join(lines).encode() + ending.encode()

            assert problems_of(data) == [
                (3, "unknown namespace 'nobody'"),
                (4, "negative billable_users -3"),
            ], (chunk_size, ending)


def test_a_line_too_long_ends_where_its_line_ends_whatever_the_reads(monkeypatch):
    monkeypatch.setattr(usage.lines, "LINE_MAX_LENGTH", 40)
    NamespaceFactory(name="alpha")
    day = days_ago(1)
    lines = [SAAS_HEADER, f"alpha,{day},1", "x" * 60, f"nobody,{day},2"]
    # 37 and 55 end a read on the "\r" of the long line (with "\r\n" and "\r").
    for chunk_size in (1, 3, 16, 37, 41, 55, 1 << 16):
        monkeypatch.setattr(usage.lines, "CHUNK_SIZE", chunk_size)
        for ending in ("\n", "\r\n", "\r"):
            data = ending.join(lines).encode() + ending.encode()

            assert problems_of(data) == [
                (3, "unreadable: line longer than 40 bytes"),
                (4, "unknown namespace 'nobody'"),
            ], (chunk_size, ending)


def test_a_file_with_many_bad_lines_lists_the_first_ones_and_counts_them_all(monkeypatch):
    monkeypatch.setattr(usage.parse, "PROBLEMS_LISTED", 2)
    lines = [f"nobody,{days_ago(n)},1" for n in range(1, 6)]

    with pytest.raises(UsageImportError) as caught:
        parse_usage_csv(csv_file(SAAS_HEADER, *lines))

    assert caught.value.problems == [
        (2, "unknown namespace 'nobody'"),
        (3, "unknown namespace 'nobody'"),
    ]
    assert caught.value.count == 5
    assert caught.value.message.startswith(
        "The file was not imported (5 bad lines, the first 2 listed):\n"
    )


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


# -- the command --------------------------------------------------------------------------


def write(tmp_path, *lines: str, name="usage.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_command_imports_and_prints_the_counts(tmp_path):
    NamespaceFactory(name="alpha")
    NamespaceFactory(name="beta")
    day = days_ago(1)
    call_command("import_seat_usage", write(tmp_path, SAAS_HEADER, f"alpha,{day},1"))
    out = io.StringIO()

    call_command(
        "import_seat_usage",
        str(write(tmp_path, SAAS_HEADER, f"alpha,{day},2", f"beta,{day},3")),
        stdout=out,
    )

    assert out.getvalue().strip() == (
        "Imported usage.csv (SaaS): 2 rows, 1 created, 1 replaced, 0 unchanged."
    )
    assert History.objects.filter(history_change_reason="usage import usage.csv").count() == 3


def test_command_rejects_a_bad_file_with_every_line_on_stderr_and_exit_code_2(
    tmp_path, capsys, monkeypatch
):
    NamespaceFactory(name="alpha")
    day = days_ago(1)
    path = write(
        tmp_path, SAAS_HEADER, f"alpha,{day},1", f"nobody,{day},2", f"alpha,{day},-3", name="d.csv"
    )

    # The real entry point closes the connections when it ends; the test's transaction
    # must survive it.
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)
    with pytest.raises(SystemExit) as exit_info:
        execute_from_command_line(["manage.py", "import_seat_usage", str(path)])

    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "d.csv:3: unknown namespace 'nobody'",
        "d.csv:4: negative billable_users -3; duplicate of line 2 (same namespace and date)",
        "CommandError: d.csv was not imported: 2 bad lines, nothing was written.",
    ]
    assert SeatUsageReport.objects.count() == 0


def test_command_rejects_the_largest_integer_with_its_line_and_writes_nothing(tmp_path):
    NamespaceFactory(name="alpha")
    day = days_ago(1)
    path = write(tmp_path, SAAS_HEADER, f"alpha,{days_ago(2)},5", f"alpha,{day},2147483647")
    err = io.StringIO()

    with pytest.raises(CommandError, match="1 bad line, nothing was written") as caught:
        call_command("import_seat_usage", path, stderr=err)

    assert caught.value.returncode == 2
    assert err.getvalue().splitlines() == [f"usage.csv:3: {above(2147483647)}"]
    assert SeatUsageReport.objects.count() == 0


def test_command_reports_an_unknown_header_and_a_missing_file(tmp_path):
    err = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("import_seat_usage", write(tmp_path, "a,b,c", "1,2,3"), stderr=err)
    assert caught.value.returncode == 2
    assert err.getvalue().startswith("usage.csv:1: unknown header 'a,b,c'; expected ")

    with pytest.raises(CommandError, match="Cannot read") as caught:
        call_command("import_seat_usage", tmp_path / "missing.csv")
    assert caught.value.returncode == 2


def test_command_says_so_when_the_file_has_only_a_header(tmp_path):
    out = io.StringIO()

    call_command("import_seat_usage", write(tmp_path, SM_HEADER), stdout=out)

    assert out.getvalue().strip() == (
        "usage.csv (self-managed): the file has no usage rows, nothing imported."
    )


def test_command_dry_run_reports_and_writes_nothing(tmp_path):
    NamespaceFactory(name="alpha")
    out = io.StringIO()

    call_command(
        "import_seat_usage",
        write(tmp_path, SAAS_HEADER, f"alpha,{days_ago(1)},4"),
        "--dry-run",
        stdout=out,
    )

    assert out.getvalue().strip() == (
        "Dry run, nothing written. usage.csv (SaaS): 1 rows would create 1, replace 0, "
        "leave 0 unchanged."
    )
    assert SeatUsageReport.objects.count() == 0
    assert History.objects.count() == 0


def test_command_names_the_line_of_a_bad_byte_and_writes_nothing(tmp_path):
    NamespaceFactory(name="alpha")
    lines: list[str | bytes] = [SAAS_HEADER, *alpha_lines(5999)]
    lines[5000] = f"caf\xe9,{days_ago(1)},4".encode("latin-1")  # line 5001
    path = tmp_path / "usage.csv"
    path.write_bytes(usage_bytes(*lines))
    err = io.StringIO()

    with pytest.raises(CommandError, match="1 bad line, nothing was written") as caught:
        call_command("import_seat_usage", path, stderr=err)

    assert caught.value.returncode == 2
    assert err.getvalue().splitlines() == [f"usage.csv:5001: {NOT_UTF8}"]
    assert SeatUsageReport.objects.count() == 0
    assert History.objects.count() == 0


def test_command_says_how_many_bad_lines_were_not_listed(tmp_path, monkeypatch):
    monkeypatch.setattr(usage.parse, "PROBLEMS_LISTED", 1)
    path = write(tmp_path, SAAS_HEADER, *(f"nobody,{days_ago(n)},1" for n in range(1, 4)))
    err = io.StringIO()

    with pytest.raises(CommandError, match="3 bad lines, nothing was written"):
        call_command("import_seat_usage", path, stderr=err)

    assert err.getvalue().splitlines() == [
        "usage.csv:2: unknown namespace 'nobody'",
        "usage.csv: 2 more bad lines not listed",
    ]
