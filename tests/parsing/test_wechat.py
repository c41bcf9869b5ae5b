"""WeChat text shapes: quote-replies, @mentions and native 接龙 lists (SPEC §4)."""

from __future__ import annotations

import pytest

from handlers.parsing.text import normalize
from handlers.parsing.wechat import Jielong, JielongEntry, Quote, mentions, parse_jielong, split_quote

DASHES = "- - - - - - - - - - - - - - -"

# --- quote-replies ------------------------------------------------------------------------------

QUOTES = [
    pytest.param(f"「张姐：我要2箱」\n{DASHES}\n跟一单", Quote("张姐", "我要2箱"), "跟一单", id="spec"),
    pytest.param(f"「吴团长：开团 内蒙古牛肉卷 58元/盒 明晚8点截团」\n{DASHES}\n要两盒",
                 Quote("吴团长", "开团 内蒙古牛肉卷 58元/盒 明晚8点截团"), "要两盒", id="deal-card"),
    pytest.param(f"「小芳：咖啡来一盒」\n{DASHES}\n跟一单", Quote("小芳", "咖啡来一盒"), "跟一单",
                 id="member-order"),
    pytest.param(f"「小芳：要两盒」\n{DASHES}\n我也要两盒", Quote("小芳", "要两盒"), "我也要两盒",
                 id="me-too"),
    pytest.param(f"「Kelly: +1」\n{DASHES}\n+1", Quote("Kelly", "+1"), "+1", id="ascii-colon"),
    pytest.param("「张姐：我要2箱」\n---------------\n跟一单", Quote("张姐", "我要2箱"), "跟一单",
                 id="dashes-without-spaces"),
    pytest.param(f"「小芳：截团：明晚8点」\n{DASHES}\n几点？", Quote("小芳", "截团：明晚8点"), "几点？",
                 id="colon-in-quoted-text"),
    pytest.param(f"「果果团长：#开团 周末水果团\n1. 富士苹果 39.9元/箱\n2. 赣南脐橙 29.9元/箱」"
                 f"\n{DASHES}\n橙子两箱",
                 Quote("果果团长", "#开团 周末水果团\n1. 富士苹果 39.9元/箱\n2. 赣南脐橙 29.9元/箱"),
                 "橙子两箱", id="multi-line-quote"),
    pytest.param(f"「张姐：我要2箱」\n{DASHES}\n跟一单\n3号楼302", Quote("张姐", "我要2箱"),
                 "跟一单\n3号楼302",
                 id="multi-line-reply"),
    pytest.param(f"「阿May：[图片]」\n{DASHES}\n这个多少钱", Quote("阿May", "[图片]"), "这个多少钱",
                 id="quoted-image"),
]


@pytest.mark.parametrize(("raw", "quote", "reply"), QUOTES)
def test_split_quote(raw: str, quote: Quote, reply: str) -> None:
    got_quote, got_reply = split_quote(raw)
    assert got_quote == quote
    assert got_reply == reply


NOT_QUOTES = [
    "跟一单",
    "我要2箱\n3号楼302",
    f"分割线\n{DASHES}\n跟一单",  # a dashed line without a 「quote」 block
    "「张姐：我要2箱」 跟一单",  # brackets but no dashed line
    "1-2-3-4-5",
    "- - -\n跟一单",  # too short to be WeChat's separator
]


@pytest.mark.parametrize("raw", NOT_QUOTES)
def test_split_quote_leaves_plain_messages(raw: str) -> None:
    assert split_quote(raw) == (None, raw)


# --- @mentions -----------------------------------------------------------------------------------

MENTIONS = [
    ("设置团长 @张姐", ["张姐"]),
    ("设置团长 @张姐\u2005", ["张姐"]),
    ("@张姐\u2005已付", ["张姐"]),
    ("已付 @张姐\u2005@李阿姨\u2005", ["张姐", "李阿姨"]),
    ("核销 @张姐 @李阿姨 @王奶奶", ["张姐", "李阿姨", "王奶奶"]),
    ("@Kelly 你好", ["Kelly"]),
    ("@小胡\u2005开团吧", ["小胡"]),
    ("@王团长 苹果甜不甜？", ["王团长"]),
    ("@阿May\u2005@小傑\u2005到货了", ["阿May", "小傑"]),
    ("跟一单", []),
    ("没有人被at", []),
]


@pytest.mark.parametrize(("raw", "expected"), MENTIONS)
def test_mentions(raw: str, expected: list[str]) -> None:
    assert mentions(raw) == expected


# --- 接龙 -------------------------------------------------------------------------------------------

SPEC_JIELONG = """#接龙
山东富士苹果 39.9元/箱

1. 王奶奶 1箱
2. 李阿姨 3号楼 2箱
3. 张姐 两箱"""

JIELONGS = [
    pytest.param(SPEC_JIELONG, Jielong("山东富士苹果 39.9元/箱", (
        JielongEntry(1, "王奶奶 1箱"), JielongEntry(2, "李阿姨 3号楼 2箱"), JielongEntry(3, "张姐 两箱"))),
        id="spec"),
    pytest.param("#接龙\n云南蓝莓 35元/盒\n\n1. 小雨 2盒\n2. 阿杰 7栋 1盒\n3. 梅姐",
                 Jielong("云南蓝莓 35元/盒", (
        JielongEntry(1, "小雨 2盒"), JielongEntry(2, "阿杰 7栋 1盒"), JielongEntry(3, "梅姐"))),
        id="line-without-quantity"),
    pytest.param("接龙\n土鸡蛋 30元/板\n1、王姐 2板\n2、老刘 1板", Jielong("土鸡蛋 30元/板", (
        JielongEntry(1, "王姐 2板"), JielongEntry(2, "老刘 1板"))), id="no-hash-dunhao"),
    pytest.param("＃接龍\n山東富士蘋果\n\n１．王奶奶 １箱", Jielong("山东富士苹果", (
        JielongEntry(1, "王奶奶 1箱"),)), id="fullwidth-traditional"),
    pytest.param("#接龙\n丹东草莓 49元/盒\n例：张三 3号楼 1盒\n\n1.小潘 2盒\n2.老许 5-302 1盒", Jielong(
        "丹东草莓 49元/盒\n例:张三 3号楼 1盒", (
            JielongEntry(1, "小潘 2盒"), JielongEntry(2, "老许 5-302 1盒"))), id="example-line-no-space"),
    pytest.param("#接龙\n舟山带鱼\n\n9. 阿伦 1袋\n10. 小梁 3号楼302 两袋\n11. 小宋 7-1201 3袋",
                 Jielong("舟山带鱼", (
        JielongEntry(9, "阿伦 1袋"), JielongEntry(10, "小梁 3号楼302 两袋"),
        JielongEntry(11, "小宋 7-1201 3袋"))), id="two-digit-numbers"),
]


@pytest.mark.parametrize(("raw", "expected"), JIELONGS)
def test_parse_jielong(raw: str, expected: Jielong) -> None:
    assert parse_jielong(normalize(raw)) == expected


NOT_JIELONG = [
    "我要接龙",
    "接龙了吗？",
    "怎么接龙",
    "跟一单",
    "开团 山东富士苹果 39.9元/箱",
    # A bare "接龙" is a member's order of 1 unit (SPEC §3), not a 接龙 list with no lines.
    "接龙",
    "#接龙",
]


@pytest.mark.parametrize("raw", NOT_JIELONG)
def test_parse_jielong_rejects(raw: str) -> None:
    assert parse_jielong(normalize(raw)) is None
