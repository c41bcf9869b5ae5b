"""Text normalisation shared by every parser: one canonical form before any regex runs."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from opencc import OpenCC

# Characters WeChat and phone keyboards slip into messages that carry no meaning:
# zero-width spaces/joiners, the BOM, word joiner and the variation selectors of emoji.
_INVISIBLE = dict.fromkeys(
    # (U+20E3 is the keycap that turns "3" into the emoji 3️⃣: the digit stays.)
    [0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, 0xFE0E, 0xFE0F, 0x20E3], None
)
# WeChat puts U+2005 (four-per-em space) after an @mention; treat every exotic space alike.
_SPACES = re.compile(r"[\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\t]+")
_T2S = OpenCC("t2s")
# WeChat's built-in stickers arrive in text as their name in brackets: [玫瑰], [强], [OK].
_STICKER = re.compile(r"\[(?:[\u4e00-\u9fff]{1,4}|OK|Yeah!?|Emm|Wow|Facepalm|Smirk|Hurt|Awesome)\]")
# Emoji and dingbat operators people type for "+1" and "x2", mapped before symbols are dropped.
_SIGNS = str.maketrans({"➕": "+", "✚": "+", "✖": "x", "✕": "x"})


def _is_symbol(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat in ("So", "Sk", "Cs", "Co", "Cn") and not ch.isalnum()


@lru_cache(maxsize=4096)
def normalize(text: str, *, lower: bool = True, simplify: bool = True) -> str:
    """Return the canonical form of a chat text for parsing.

    Full-width forms become ASCII (NFKC), invisible characters vanish, exotic spaces become
    one ASCII space, traditional characters become simplified, emoji and other symbols are
    dropped, and letters are lower-cased (unless ``lower`` is False, for text the bot shows
    back, such as a deal's title). Line breaks are kept.

    Args:
        text: The raw message text.
        lower: Whether to lower-case letters.
        simplify: Whether traditional characters become simplified (False only to show a
            leader's words back as written: see ``in_written_script``).

    Returns:
        The normalised text, stripped.
    """
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    text = _STICKER.sub(" ", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACES.sub(" ", text)
    if not text.isascii():
        text = text.translate(_SIGNS)
        if simplify:
            text = _T2S.convert(text)
    text = "".join(ch for ch in text if not _is_symbol(ch))
    if lower:
        text = text.lower()
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def in_written_script(piece: str, raw: str) -> str:
    """Give a piece of ``normalize(raw, lower=False)`` back in the script ``raw`` was written
    in: a leader who writes 台灣鳳梨酥 sees 台灣鳳梨酥 on the card, though the parsers read
    台湾凤梨酥. Character by character; unchanged if the conversion changed the length."""
    simplified = normalize(raw, lower=False)
    written = normalize(raw, lower=False, simplify=False)
    if simplified == written or len(simplified) != len(written):
        return piece
    back = {s: w for s, w in zip(simplified, written, strict=True) if s != w}
    return "".join(back.get(ch, ch) for ch in piece)
