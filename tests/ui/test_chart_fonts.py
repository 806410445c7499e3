"""PNG charts draw company names of every script with glyphs, or say which script they cannot.

A character no font has is drawn as a box, and every such box is the same: two names of the same
length in a script without a font give byte-identical PNGs. So each test here renders names that
differ only in their characters and asserts the PNGs differ, which fails as soon as that script
falls back to boxes (or to nothing, as a colour emoji font the renderer cannot draw would).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from msd.settings import SettingsError, load_settings
from olap.queries import CompanyRisk
from ui.charts import ChartContext, build_chart, render
from ui.fonts import INSTALL_HINT, drawn_in_png, missing_scripts, use_font_dir

REPO = Path(__file__).resolve().parents[2]
CONTEXT = ChartContext(date(2026, 11, 5), date(2026, 12, 4), "UTC", width=300, height=60)
NOWHERE = "\U00100000"  # private use: in no font
JOINED = "joined emoji (family, skin tone, flag)"

# Two names per script, of the same length, differing only in characters of that script.
NAME_PAIRS = {
    "chinese": ("东方银行", "东亚银行"),
    "japanese": ("みずほ銀行", "りそな銀行"),
    "korean": ("신한은행", "국민은행"),
    "arabic": ("بنك مصر", "بنك قطر"),
    "hebrew": ("בנק לאומי", "בנק מזרחי"),
    "emoji": ("🏦 Savings", "🚀 Savings"),
}


@pytest.fixture(autouse=True, scope="module")
def configured_fonts() -> None:
    """The fonts the service itself would use: the system's and MSD_CHART_FONT_DIR's."""
    use_font_dir(load_settings().chart_font_dir)


def _png_of_company(name: str) -> bytes:
    row = CompanyRisk("k", name, 5, 2, 1, Decimal("250000"), date(2026, 12, 1))
    return render(build_chart("top_companies", [row], CONTEXT), "png")


def _drawing_of(name: str) -> str:
    """The PNG of a chart of one company, as a digest (the charts differ only in the name)."""
    return hashlib.sha256(_png_of_company(name)).hexdigest()


def _not_drawn(name: str) -> str:
    """``name`` with each character of the tested script replaced by one no font has."""
    return "".join(c if c.isascii() else NOWHERE for c in name)


@pytest.mark.parametrize("script", NAME_PAIRS)
def test_png_draws_company_names_of_each_script_with_their_own_glyphs(script: str) -> None:
    first, second = NAME_PAIRS[script]

    drawing = _drawing_of(first)

    assert drawing != _drawing_of(second), f"{script} names are drawn alike: {INSTALL_HINT}"
    assert drawing != _drawing_of(_not_drawn(first)), f"{script} drawn as boxes: {INSTALL_HINT}"


@pytest.mark.parametrize("script", NAME_PAIRS)
def test_no_script_of_the_test_names_is_reported_missing(script: str) -> None:
    assert missing_scripts(NAME_PAIRS[script]) == {}


def test_joined_emoji_in_a_label_are_boxes_and_reported() -> None:
    # vl-convert 1.9 draws a family or a flag emoji inside a label as boxes: a girl and a boy
    # then look alike. When a release draws them, this fails, and the README's note should go.
    girl, boy = "\U0001f467", "\U0001f466"
    family = "Family \U0001f468\u200d\U0001f469\u200d{} Bank"

    assert _drawing_of(family.format(girl)) == _drawing_of(family.format(boy))
    assert JOINED in missing_scripts([family.format(girl)])


def test_a_chart_of_names_in_every_script_has_no_box(tmp_path: Path) -> None:
    names = [pair[0] for pair in NAME_PAIRS.values()] + ["Café Zürich AG", "ACME BANK, N.A."]
    rows = [
        CompanyRisk(f"k{i}", name, 20 - i, 9 - i, 3, Decimal("250000"), date(2026, 12, 1))
        for i, name in enumerate(names)
    ]
    context = ChartContext(date(2026, 11, 5), date(2026, 12, 4), "UTC", [("company", names[:2])])

    png = render(build_chart("top_companies", rows, context), "png")

    assert missing_scripts(names) == {}
    folder = Path(os.environ.get("MSD_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "top-companies-unicode.png").write_bytes(png)  # the README shows it


def test_a_character_in_no_font_is_not_drawn() -> None:
    assert not drawn_in_png(NOWHERE)
    assert drawn_in_png("A") and drawn_in_png("\u200d")  # a joiner draws nothing, rightly


def test_a_name_no_font_draws_gives_a_png_and_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = "Bank \U00100001\U00100001"

    with caplog.at_level(logging.WARNING, logger="ui.fonts"):
        first = _png_of_company(name)
        _png_of_company(name + " II")

    warnings = [r.getMessage() for r in caplog.records if r.name == "ui.fonts"]
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(warnings) == 1
    assert "U+100001" in warnings[0] and "MSD_CHART_FONT_DIR" in warnings[0]


def test_chart_font_dir_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="MSD_CHART_FONT_DIR"):
        load_settings(environ={"MSD_CHART_FONT_DIR": str(tmp_path / "missing")})


# Run in a fresh process whose fontconfig names only an empty folder: a machine without fonts.
_FRESH_MACHINE = """
import logging, sys
logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
from msd.settings import load_settings
from ui.fonts import drawn_in_png, use_font_dir, warn_if_undrawable
use_font_dir(load_settings().chart_font_dir)
warn_if_undrawable(["東京銀行"])
print(drawn_in_png("東"))
"""


def _on_a_machine_without_fonts(
    tmp_path: Path, font_dir: Path | None
) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "no-system-fonts"
    empty.mkdir()
    config = tmp_path / "fonts.conf"
    config.write_text(f"<fontconfig><dir>{empty}</dir></fontconfig>", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "MSD_CHART_FONT_DIR"}
    env["FONTCONFIG_FILE"] = str(config)
    if font_dir is not None:
        env["MSD_CHART_FONT_DIR"] = str(font_dir)
    return subprocess.run(
        [sys.executable, "-c", _FRESH_MACHINE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _a_cjk_font() -> Path:
    for name in ("wqy-microhei.ttc", "NotoSansCJK-Regular.ttc"):
        for found in sorted(Path("/usr/share/fonts").rglob(name)):
            return found
    pytest.fail(f"no CJK font under /usr/share/fonts: {INSTALL_HINT}")


def test_without_fonts_cjk_is_not_drawn_and_the_log_says_what_to_install(
    tmp_path: Path,
) -> None:
    run = _on_a_machine_without_fonts(tmp_path, None)

    assert run.stdout.strip() == "False"
    assert "PNG charts draw CJK characters as boxes" in run.stderr
    assert "fonts-wqy-microhei" in run.stderr


def test_chart_font_dir_gives_png_charts_the_fonts_it_holds(tmp_path: Path) -> None:
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    (fonts / "cjk.ttc").symlink_to(_a_cjk_font())

    run = _on_a_machine_without_fonts(tmp_path, fonts)

    assert run.stdout.strip() == "True"
    assert "boxes" not in run.stderr
