"""Leader command recognition (SPEC §1, §2); questions and member talk are never commands."""

from __future__ import annotations

import pytest

from handlers.parsing.commands import parse_leader_command
from handlers.parsing.text import normalize

# (raw text, kind, deal number, words that must be in args or None to skip, mentions)
COMMANDS = [
    ("截团", "close", None, None, ()),
    ("截团 #3", "close", 3, None, ()),
    ("截团#2", "close", 2, None, ()),
    ("截团 # 2", "close", 2, None, ()),
    ("截单", "close", None, None, ()),
    ("提前截团", "close", None, None, ()),
    ("截團 #3", "close", 3, None, ()),
    ("取消团 #2 供应商缺货", "cancel", 2, "供应商缺货", ()),
    ("取消团 供应商缺货", "cancel", None, "供应商缺货", ()),
    ("取消团", "cancel", None, "", ()),
    ("取消团 #4", "cancel", 4, "", ()),
    ("取消团购 #1 天气原因发不了货", "cancel", 1, "天气原因发不了货", ()),
    ("延期 #1 到 周五20点", "extend", 1, "周五20点", ()),
    ("延期到周五20点", "extend", None, "周五20点", ()),
    ("延期 到 明晚9点", "extend", None, "明晚9点", ()),
    ("改价 #1 35元/箱", "price", 1, "35元/箱", ()),
    ("改价 35元/箱", "price", None, "35元/箱", ()),
    ("补货 #1 20箱", "restock", 1, "20箱", ()),
    ("补货 30盒", "restock", None, "30盒", ()),
    ("到货 #1 请到3号楼门口取货", "arrive", 1, "请到3号楼门口取货", ()),
    ("到货", "arrive", None, "", ()),
    ("到货 #2", "arrive", 2, "", ()),
    ("到货，下午3点南门自提", "arrive", None, "下午3点南门自提", ()),
    ("货到了", "arrive", None, "", ()),
    ("到货通知：下午3点南门自提", "arrive", None, "下午3点南门自提", ()),
    ("汇总 #1", "summary", 1, "", ()),
    ("汇总", "summary", None, "", ()),
    ("统计", "summary", None, "", ()),
    ("已付 @张姐", "paid", None, None, ("张姐",)),
    ("已付 @张姐\u2005@李阿姨\u2005", "paid", None, None, ("张姐", "李阿姨")),
    ("已付款 #2 @王奶奶", "paid", 2, None, ("王奶奶",)),
    ("核销 @张姐", "picked", None, None, ("张姐",)),
    ("核销 #1 @张姐\u2005@小林", "picked", 1, None, ("张姐", "小林")),
    ("设置团长 @张姐", "appoint", None, None, ("张姐",)),
    ("设置团长 @小胡\u2005", "appoint", None, None, ("小胡",)),
    ("取消团长 @张姐", "revoke", None, None, ("张姐",)),
    ("撤销团长 @张姐", "revoke", None, None, ("张姐",)),
    ("开团 山东富士苹果 39.9元/箱 明晚8点截团", "open", None, None, ()),
    ("#开团 周末水果团\n1. 富士苹果 39.9元/箱", "open", None, None, ()),
]


@pytest.mark.parametrize(("raw", "kind", "deal_no", "args", "names"), COMMANDS)
def test_parse_leader_command(raw: str, kind: str, deal_no: int | None, args: str | None,
                              names: tuple[str, ...]) -> None:
    cmd = parse_leader_command(normalize(raw), raw)
    assert cmd is not None, f"{raw!r}: expected {kind}, got None"
    assert (cmd.kind, cmd.deal_no) == (kind, deal_no), f"{raw!r}: got {cmd}"
    if args is not None:
        if args:
            assert args in cmd.args, f"{raw!r}: args {cmd.args!r} lacks {args!r}"
        else:
            assert cmd.args == "", f"{raw!r}: expected no args, got {cmd.args!r}"
    assert cmd.mentions == names, f"{raw!r}: mentions {cmd.mentions}"


# Questions, member orders and member cancels, and chatter that only contains a command word.
NOT_COMMANDS = [
    "截团了吗？",
    "截团了吗",
    "截团了么",
    "什么时候截团",
    "几点截团？",
    "截团前能到吗",
    "截团时间是几点呢",
    "到货了吗？",
    "到货了吗",
    "几号到货？",
    "到货了没",
    "开团了吗？",
    "汇总了吗",
    "已付款了吗",
    "已付",  # paid: whom?
    "核销",  # picked up: whom?
    "延长一点时间呗",
    "取消",  # a member cancelling their own order
    "不要了",
    "取消订单",
    "取消团购吗？",
    "跟一单",
    "我要2箱",
    "团长辛苦了",
    "统计一下大家的需求呢",
    "补货吗",
    "改价了吗？",
]


@pytest.mark.parametrize("raw", NOT_COMMANDS)
def test_not_a_leader_command(raw: str) -> None:
    got = parse_leader_command(normalize(raw), raw)
    assert got is None, f"{raw!r}: expected None, got {got}"


@pytest.mark.parametrize(("raw", "kind"), [
    ("@团购助手 截团", "close"),
    ("@团购助手\u2005开团 土鸡蛋 30元/板 明晚八点截团", "open"),
    ("@团购助手 @王团长 汇总", "summary"),
])
def test_a_leading_mention_is_not_part_of_the_command(raw: str, kind: str) -> None:
    cmd = parse_leader_command(normalize(raw), raw)
    assert cmd is not None
    assert cmd.kind == kind


@pytest.mark.parametrize(("raw", "kind", "deal_no"), [("#1 截团", "close", 1), ("现在截团了", "close", None),
                                                      ("#2 汇总", "summary", 2)])
def test_commands_in_other_orders(raw: str, kind: str, deal_no: int | None) -> None:
    cmd = parse_leader_command(normalize(raw), raw)
    assert cmd is not None
    assert (cmd.kind, cmd.deal_no) == (kind, deal_no)
