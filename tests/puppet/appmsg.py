"""XML of WeChat app messages as a puppet service delivers them (what the adapter reads)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from xml.sax.saxutils import escape

ENTRY_LINE = re.compile(r"^(\s*\d{1,4}\s*[.、．)）]\s*)(.*)$")


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def jielong_xml(title: str, authors: Sequence[str | None], *, sender_id: str, creator_id: str,
                timestamp: int = 0, prefix_sender: bool = True,
                with_ranges: bool = True) -> str:
    """A native 接龙 (app message type 53) whose list reads ``title``.

    ``title`` is the list as WeChat shows it ("#接龙", topic, "", "1. 小雨 2盒", …);
    ``authors`` gives the contact id of each numbered line in order (None: unknown).
    ``<solitaire_info>`` carries the header range, the creator and one ``<i>`` per line with
    its author and its text's range (offset-length in UTF-16 units, after "N. ").
    A room message's content starts with "SENDER_ID:\\n" unless ``prefix_sender`` is False.
    """
    lines = title.split("\n")
    offset = 0  # UTF-16 units, as WeChat counts
    header_len: int | None = None
    spans: list[list[int]] = []  # [start, end] of each line's text; continuation lines extend it
    for line in lines:
        m = ENTRY_LINE.match(line)
        if m:
            if header_len is None:
                header_len = offset
            start = offset + _utf16_len(m.group(1))
            spans.append([start, start + _utf16_len(m.group(2))])
        elif spans and line.strip():
            spans[-1][1] = offset + _utf16_len(line)  # the line goes on over several lines
        offset += _utf16_len(line) + 1
    if header_len is None:
        header_len = _utf16_len(title)
    header = title.encode("utf-16-le")[:2 * header_len].decode("utf-16-le")
    header_len = _utf16_len(header.rstrip("\n"))
    items = []
    for n, (start, end) in enumerate(spans):
        author = authors[n] if n < len(authors) else None
        items.append(f"<i><u>{escape(author or '')}</u><h>0</h><s>.</s><t>{timestamp}</t>"
                     f"<r>{start}-{end - start}</r></i>")
    info = ""
    if with_ranges:
        info = (f"<solitaire><tt>0-{header_len}</tt><s>.</s><au>{escape(creator_id)}</au>"
                f"<hrt>1</hrt><loss>0</loss><content><s>{len(items)}</s>{''.join(items)}"
                f"</content></solitaire>")
    body = (
        '<?xml version="1.0"?>\n<msg>\n\t<appmsg appid="" sdkver="0">\n'
        f"\t\t<title>{escape(title)}</title>\n\t\t<des />\n\t\t<type>53</type>\n"
        "\t\t<appattach>\n\t\t\t<cdnthumbaeskey />\n\t\t\t<aeskey></aeskey>\n\t\t</appattach>\n"
        f"\t\t<extinfo>\n\t\t\t<solitaire_info><![CDATA[{info}]]></solitaire_info>\n"
        "\t\t</extinfo>\n\t</appmsg>\n"
        f"\t<fromusername>{escape(sender_id)}</fromusername>\n\t<scene>0</scene>\n</msg>"
    )
    return f"{sender_id}:\n{body}" if prefix_sender else body


def quote_xml(reply: str, *, quoted_name: str, quoted_text: str, quoted_sender_id: str) -> str:
    """A quote-reply as app message type 57 (``<refermsg>`` holds the quoted message)."""
    return (
        '<?xml version="1.0"?>\n<msg>\n\t<appmsg appid="" sdkver="0">\n'
        f"\t\t<title>{escape(reply)}</title>\n\t\t<des />\n\t\t<type>57</type>\n"
        f"\t\t<refermsg>\n\t\t\t<type>1</type>\n\t\t\t<chatusr>{escape(quoted_sender_id)}</chatusr>\n"
        f"\t\t\t<displayname>{escape(quoted_name)}</displayname>\n"
        f"\t\t\t<content>{escape(quoted_text)}</content>\n\t\t</refermsg>\n"
        "\t</appmsg>\n</msg>"
    )
