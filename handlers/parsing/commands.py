"""Leader commands: recognising them is parsing; whether the speaker may use them is not."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from handlers.parsing.deal import is_open_command
from handlers.parsing.wechat import mentions, strip_mentions

CommandKind = Literal["open", "close", "cancel", "extend", "price", "restock", "arrive",
                      "summary", "paid", "picked", "appoint", "revoke"]

# Checked in this order: 取消团长 before 取消团.
_COMMANDS: list[tuple[CommandKind, re.Pattern[str]]] = [
    ("appoint", re.compile(r"^(?:设置团长|设为团长|添加团长|任命团长)(?P<rest>.*)$")),
    ("revoke", re.compile(r"^(?:取消团长|撤销团长|移除团长|删除团长)(?P<rest>.*)$")),
    ("close", re.compile(r"^(?:现在|马上|提前|立即)?(?:截团|截单|结束团购)(?:了|啦|吧)?(?P<rest>\s*(?:#\s*\d+)?\s*)$")),
    ("cancel", re.compile(r"^(?:取消团购|取消团|撤团)(?P<rest>(?:\s|#|$).*)$")),
    ("extend", re.compile(r"^(?:延期|延长截团|推迟截团|延长|截团改到|截团时间改为)(?P<rest>(?:\s|#|到|至).*)$")),
    ("price", re.compile(r"^(?:改价|调价|价格改为)(?P<rest>(?:\s|#).*)$")),
    ("restock", re.compile(r"^(?:补货|加库存|追加库存)(?P<rest>(?:\s|#).*)$")),
    ("arrive", re.compile(r"^(?:到货|已到货|到货通知|货到了)(?P<rest>(?:\s|#|$|[,，:：]).*)$")),
    ("summary", re.compile(r"^(?:汇总|统计|订单汇总|接龙汇总)(?P<rest>\s*(?:#\s*\d+)?\s*)$")),
    ("paid", re.compile(r"^(?:已付款|已付|已收款|收款)(?P<rest>(?:\s|#|@).*)$")),
    ("picked", re.compile(r"^(?:核销|已取货|已取|已提货)(?P<rest>(?:\s|#|@).*)$")),
]
_DEAL_NO = re.compile(r"#\s*(\d+)")


@dataclass(frozen=True)
class LeaderCommand:
    """A recognised leader command with its deal reference and arguments."""

    kind: CommandKind
    deal_no: int | None = None
    args: str = ""
    mentions: tuple[str, ...] = ()


def parse_leader_command(text: str, raw: str | None = None) -> LeaderCommand | None:
    """Recognise a leader command in a normalised message.

    Args:
        text: The normalised message.
        raw: The message as delivered, for @mentions (names are kept as written).

    Returns:
        The command, or None when the message is not one (questions never are).
    """
    # "@团购助手 截团": a leading @mention of the bot (or anyone) is not part of the command.
    text = re.sub(r"^(?:@[^\s@]{1,32}\s+)+", "", text)
    if is_open_command(text):
        return LeaderCommand("open", args=text)
    # "#1 截团": the deal number may come first.
    lead = re.match(r"^#\s*(\d+)\s+(?=\S)", text)
    if lead:
        cmd = parse_leader_command(text[lead.end():] + " #" + lead.group(1), raw)
        return cmd
    first = strip_mentions(text.split("\n", 1)[0])  # "@小胡?" is a name, not a question
    if first.endswith(("?", "吗", "么", "呢")):
        return None
    for kind, rx in _COMMANDS:
        m = rx.match(text)
        if not m:
            continue
        rest = m.group("rest")
        deal_no = None
        dm = _DEAL_NO.search(rest)
        if dm:
            deal_no = int(dm.group(1))
            rest = rest[: dm.start()] + rest[dm.end():]
        names = tuple(mentions(raw if raw is not None else text))
        rest = re.sub(r"@\S+", "", rest).strip(" :：,，")
        if kind in ("appoint", "revoke", "paid", "picked") and not names:
            return None if kind in ("paid", "picked") else LeaderCommand(kind, deal_no, rest, names)
        return LeaderCommand(kind, deal_no, rest, names)
    return None
