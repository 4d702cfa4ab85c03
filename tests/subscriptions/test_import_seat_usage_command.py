"""The import_seat_usage management command
(subscriptions/management/commands/import_seat_usage.py): counts on stdout, bad lines on
stderr with exit code 2, nothing written."""

import io

import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError

from subscriptions.models import SeatUsageReport
from subscriptions.services import usage
from tests.factories import NamespaceFactory
from tests.subscriptions.usage_files import (
    NOT_UTF8,
    SAAS_HEADER,
    SM_HEADER,
    History,
    above,
    alpha_lines,
    days_ago,
    usage_bytes,
)

pytestmark = pytest.mark.django_db


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
