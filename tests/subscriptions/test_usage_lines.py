"""Lines of a seat usage file (subscriptions/services/usage/lines.py): unreadable input is
named on its own line, whatever the buffering."""

import csv
import io

import pytest

from subscriptions.models import SeatUsageReport
from subscriptions.services import usage
from subscriptions.services.usage import (
    LINE_MAX_LENGTH,
    UsageImportError,
    parse_usage_csv,
    usage_import,
)
from tests.factories import NamespaceFactory, SeatUsageReportFactory
from tests.subscriptions.usage_files import (
    NOT_UTF8,
    SAAS_HEADER,
    TOO_LONG,
    alpha_lines,
    csv_file,
    days_ago,
    problems_of,
    usage_bytes,
)

pytestmark = pytest.mark.django_db


# -- unreadable input: named on its own line, whatever the buffering ----------------------


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
