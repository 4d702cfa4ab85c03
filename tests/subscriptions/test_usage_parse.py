"""Reading a seat usage file (subscriptions/services/usage/parse.py): every bad line is
reported and nothing is imported; implausible counts; headers."""

import io

import pytest

from portal.errors import DomainError
from subscriptions.models import SeatUsageReport
from subscriptions.services.usage import UsageImportError, parse_usage_csv
from tests.factories import NamespaceFactory, SeatUsageReportFactory, SelfManagedNamespaceFactory
from tests.subscriptions.usage_files import (
    BOUND,
    SAAS_HEADER,
    SM_HEADER,
    above,
    csv_file,
    days_ago,
    reports,
    run,
)

pytestmark = pytest.mark.django_db


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
