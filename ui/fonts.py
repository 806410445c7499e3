"""Fonts for the PNG charts, and a warning when a name's script has none.

vl-convert draws PNG text itself (resvg over a font database): the fonts in the system's font
folders (those fontconfig names, such as /usr/share/fonts) when it first renders, Liberation Sans
built into it, and any folder given to ``vl_convert.register_font_directory``. SVG, HTML and JSON
charts are not affected: their text is drawn by the viewer's fonts.

Text is drawn in the first family of ``PNG_FONT`` that is installed. A character that family
lacks is taken, with the whole label when it has all of it, from the first font in the database
that has the character, whatever its weight or style: so the fewer fonts cover a script, the
steadier the result (the README's set-up names one regular sans font per script). A character no
font has is drawn as a box, the same box for every such character.

Whether a character is drawn is asked of the renderer itself: the character alone rendered to a
small PNG must differ from the box of a character no font has, and from blank (a font that holds
the character but cannot be drawn, such as a colour emoji format the renderer lacks).
"""

from __future__ import annotations

import functools
import html
import logging
import threading
import unicodedata
from pathlib import Path
from typing import Iterable

__all__ = [
    "INSTALL_HINT",
    "PNG_FONT",
    "drawn_in_png",
    "missing_scripts",
    "use_font_dir",
    "warn_if_undrawable",
]

logger = logging.getLogger(__name__)

# DejaVu Sans covers Latin, Greek, Cyrillic, Arabic and Hebrew in one family, so those labels
# keep the chart's weight (as the first font found, a fallback could be any DejaVu variant);
# Liberation Sans is built into vl-convert, for machines without DejaVu.
PNG_FONT = "DejaVu Sans, Liberation Sans, sans-serif"
INSTALL_HINT = (
    "install Debian's fonts-dejavu-core, fonts-wqy-microhei and fonts-noto-color-emoji, or set "
    "MSD_CHART_FONT_DIR to a folder of fonts that have them (README: Fonts for PNG charts)"
)
# Private use, plane 16: in no font, so drawn as the box every missing character gets.
_NOWHERE = "\U00100000"
# Letters, numbers, punctuation and symbols have glyphs; marks, joiners, variation selectors and
# spaces are drawn as part of their neighbours or not at all.
_DRAWN_CATEGORIES = ("L", "N", "S", "P", "Co")
# Characters that join emoji into one picture (a family, a skin tone, a flag, a keycap). resvg
# gives up on a label when the emoji font shapes such a sequence into fewer glyphs than the
# label's own font did, and draws every emoji of it as a box: a font cannot help.
_SEQUENCE_PARTS = frozenset(
    ["\u200d", "\u20e3", *map(chr, range(0x1F3FB, 0x1F400)), *map(chr, range(0x1F1E6, 0x1F200))]
)

_JOINED = "joined emoji (family, skin tone, flag)"
_JOINED_REASON = "vl-convert 1.9's renderer cannot join them inside a label"

_NO_FONT_REASON = f"no font here has them; {INSTALL_HINT}"

_lock = threading.Lock()
_registered: set[Path] = set()
_warned: set[str] = set()


def use_font_dir(folder: Path | None) -> None:
    """Let PNG charts use the fonts in ``folder`` too (once per folder and process)."""
    if folder is None or folder in _registered:
        return
    import vl_convert

    with _lock:
        vl_convert.register_font_directory(str(folder.resolve()))
        _registered.add(folder)
        _png_of.cache_clear()
        drawn_in_png.cache_clear()
    logger.info("PNG charts also use the fonts in %s", folder)


def _probe_svg(text: str) -> str:
    # The charts' own font and a common size: a missing character gets that font's box.
    width = 24 * len(text) + 8
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="28">'
        f'<text x="4" y="20" font-family="{PNG_FONT}" font-size="16">{html.escape(text)}</text>'
        "</svg>"
    )


@functools.lru_cache(maxsize=1024)
def _png_of(text: str) -> bytes:
    import vl_convert

    return vl_convert.svg_to_png(_probe_svg(text))


@functools.lru_cache(maxsize=8192)
def drawn_in_png(char: str) -> bool:
    """Whether PNG charts draw ``char`` with a glyph of its own (not a box, not nothing)."""
    if not unicodedata.category(char).startswith(_DRAWN_CATEGORIES):
        return True
    return _png_of(char) not in (_png_of(_NOWHERE), _png_of(" "))


def _script(char: str) -> str:
    """A script's name for a message: the first word of the character's Unicode name."""
    if unicodedata.category(char) == "So":
        return "emoji/symbol"
    name = unicodedata.name(char, "")
    return name.split(" ")[0] if name else f"U+{ord(char):04X}"


def missing_scripts(texts: Iterable[str]) -> dict[str, str]:
    """Each script PNG charts draw as boxes in ``texts``, with the first text showing it."""
    missing: dict[str, str] = {}
    for text in texts:
        if text.isascii():
            continue
        for char in set(text):
            if not char.isascii() and not drawn_in_png(char):
                missing.setdefault(_script(char), text)
        if not _SEQUENCE_PARTS.isdisjoint(text):
            missing.setdefault(_JOINED, text)
    return missing


def warn_if_undrawable(texts: Iterable[str]) -> None:
    """Log once per script and process when PNG charts would draw that script as boxes."""
    for script, text in missing_scripts(texts).items():
        with _lock:
            if script in _warned:
                continue
            _warned.add(script)
        joined = script == _JOINED
        logger.warning(
            "PNG charts draw %s as boxes (as in %r): %s. SVG, HTML and JSON charts are not "
            "affected.",
            script if joined else f"{script} characters",
            text[:60],
            _JOINED_REASON if joined else _NO_FONT_REASON,
        )
