"""``msd ingest`` as a user types it: mistakes end in one line and a documented exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from msd.cli import main
from tests.pg_schemas import fresh_schema_url

NATIVE_HEADER = "alert_id,company_name,violation_type,severity,detected_at"


@pytest.fixture
def settings_flags(pg_server_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Flags that point the command at a schema and a data folder of its own."""
    with fresh_schema_url(pg_server_url) as url:
        yield ["--database-url", url, "--data-dir", str(tmp_path / "data")]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing file", "nope.csv: no such file"),
        ("unknown columns", "odd.csv: cannot tell the format from its columns (when, who, what)"),
        ("unknown format", "unknown format 'bogus': the built-in formats are cfpb, native"),
    ],
)
def test_an_unusable_file_or_format_is_one_error_line_and_exit_2(
    settings_flags: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    message: str,
) -> None:
    odd = tmp_path / "odd.csv"
    odd.write_text("when,who,what\n2024-01-05,Acme,fees\n", encoding="utf-8")
    good = tmp_path / "good.csv"
    good.write_text(f"{NATIVE_HEADER}\na-1,Acme,Fees,LOW,2024-01-05\n", encoding="utf-8")
    arguments = {
        "missing file": [str(tmp_path / "nope.csv")],
        "unknown columns": [str(odd)],
        "unknown format": [str(good), "--format", "bogus"],
    }[case]

    code = main(["ingest", *arguments, *settings_flags])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("msd: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
