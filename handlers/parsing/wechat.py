"""The WeChat text shapes that wrap a message: quote-replies, @mentions and 接龙 lists."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEPARATOR = re.compile(r"^\s*(?:-\s*){5,}$")
_MENTION = re.compile(r"@([^\s@\u2005]{1,32})(?:[\u2005 ]|$)")
_JIELONG_HEAD = re.compile(r"^\s*[#＃]?\s*接龙\s*$")
_ENTRY = re.compile(r"^\s*(\d{1,4})\s*[.、．)）]\s*(.*)$")
_LOOSE_ENTRY = re.compile(r"^\s*(\d{1,3})\s+(\S.*)$")


@dataclass(frozen=True)
class Quote:
    """The quoted part of a quote-reply: who said it and what (as WeChat shows it)."""

    sender: str
    text: str


def split_quote(raw: str) -> tuple[Quote | None, str]:
    """Split a quote-reply into the quote and the reply after the dashed line.

    The quote is the balanced 「…」 block at the start (a quote may contain quotes of its
    own, each with its dashed line); the reply is what follows the dashed line after it.

    Args:
        raw: The message text as delivered.

    Returns:
        (quote, reply); quote is None when the message is not a quote-reply.
    """
    text = raw.lstrip()
    if not text.startswith("「"):
        return None, raw
    depth, pos = 0, -1
    for pos, ch in enumerate(text):  # noqa: B007  (pos is the closing bracket after the loop)
        depth += (ch == "「") - (ch == "」")
        if depth == 0:
            break
    if depth != 0:
        return None, raw
    block, rest = text[1:pos], text[pos + 1:]
    lines = rest.split("\n")
    if lines[0].strip():
        return None, raw
    for i, line in enumerate(lines[1:], start=1):
        if _SEPARATOR.match(line):
            reply = "\n".join(lines[i + 1:]).strip()
            m = re.match(r"([^:：\n「」]{1,40})[:：](.*)", block, re.S)
            quote = Quote(m.group(1).strip(), m.group(2).strip()) if m else Quote("", block.strip())
            return quote, reply
        if line.strip():
            break
    return None, raw


def strip_mentions(text: str) -> str:
    """The text without its @mentions ("@团长 我要3袋" → "我要3袋")."""
    return _MENTION.sub(" ", text).strip()


def mentions(text: str) -> list[str]:
    """Names @-mentioned in a message, in order ("@张姐\u2005" or "@张姐 ")."""
    return _MENTION.findall(text)


@dataclass(frozen=True)
class JielongEntry:
    """One numbered line of a 接龙 list."""

    no: int
    text: str


@dataclass(frozen=True)
class Jielong:
    """A 接龙 message: header lines (the product) and the numbered entries."""

    header: str
    entries: tuple[JielongEntry, ...]


def parse_jielong(text: str) -> Jielong | None:
    """Parse a normalised 接龙 message; None when the text is not one."""
    lines = text.split("\n")
    if not lines or not _JIELONG_HEAD.match(lines[0]):
        return None
    header: list[str] = []
    entries: list[JielongEntry] = []
    for line in lines[1:]:
        # Once the list has begun, "4 Bella" (a ④ turned into 4) is a line too.
        m = _ENTRY.match(line) or (_LOOSE_ENTRY.match(line) if entries else None)
        if m:
            entries.append(JielongEntry(int(m.group(1)), m.group(2).strip()))
        elif not entries and line.strip():
            header.append(line.strip())
    if not entries and not header:
        return None  # a bare "接龙" is a member saying "count me in", not a list
    return Jielong("\n".join(header), tuple(entries))
