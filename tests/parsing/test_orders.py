"""Member messages (SPEC §3): orders, changes, cancels, on-behalf, notes, status and noise.

Every input goes through ``normalize`` first, as the dispatcher does. Expectations are what a
团长 would expect to see recorded, written as effective lines: the item each line lands on
(resolved the way the order handler resolves it: the deal's only item, an item number, or
"each item") and its quantity (1 when none is written; None on a cancel means "all").
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from handlers.parsing.order import (
    Ambiguous,
    CatalogItem,
    OrderIntent,
    StatusQuery,
    classify_status,
    fill_range,
    is_same_as,
    parse_member_message,
)
from handlers.parsing.text import normalize


def single(name: str, unit: str, deal_id: int = 1) -> list[CatalogItem]:
    return [CatalogItem(deal_id, 1, name, unit, 1)]


def multi(*items: tuple[str, str], deal_id: int = 1) -> list[CatalogItem]:
    return [CatalogItem(deal_id, no, name, unit, len(items)) for no, (name, unit) in enumerate(items, 1)]


APPLE = single("山东富士苹果", "箱")
ORANGE = single("赣南脐橙", "箱")
RICE = single("东北五常大米", "袋")
PINEAPPLE = single("海南金钻凤梨", "个")
BLUEBERRY = single("云南蓝莓", "盒")
EGGS = single("土鸡蛋", "板")
PORK = single("散养土猪五花肉", "斤")
BEEF = single("内蒙古牛肉卷", "盒")
CRAB = single("阳澄湖大闸蟹", "只")
FISH = single("舟山带鱼", "袋")
DURIAN = single("泰国榴莲", "个")
MILK = single("新希望鲜牛奶", "瓶")
DUMPLING = single("手工水饺", "包")
TISSUE = single("维达抽纸", "件")
SKEWER = single("新疆羊肉串", "串")
DUCK = single("北京烤鸭", "只")
ZONGZI = single("嘉兴肉粽", "份")
STRAWBERRY = single("丹东草莓", "盒")
FRUIT = multi(("富士苹果", "箱"), ("赣南脐橙", "箱"), ("阳光玫瑰", "串"))
BREAKFAST = multi(("鲜肉包", "袋"), ("豆沙包", "袋"), ("手工馒头", "袋"))
TWO_DEALS = single("烟台大樱桃", "盒", deal_id=1) + single("潍坊萝卜", "箱", deal_id=2)

ANY = object()  # the note is not asserted


def effective(intent: OrderIntent, catalog: Sequence[CatalogItem]) -> list[tuple[str | None, Decimal | None]]:
    """The lines as the handler applies them to a one-deal catalog; None item = ask which."""
    deal_ids = {c.deal_id for c in catalog}
    only = catalog[0] if len(catalog) == 1 else None
    out: list[tuple[str | None, Decimal | None]] = []
    for ln in intent.lines:
        qty = ln.qty if ln.qty is not None or intent.kind == "cancel" else Decimal(1)
        if ln.item is not None:
            out.append((ln.item.name, qty))
        elif ln.item_no is not None and len(deal_ids) == 1:
            match = [c.name for c in catalog if c.item_no == ln.item_no]
            out.append((match[0] if match else f"no item {ln.item_no}", qty))
        elif intent.all_items and len(deal_ids) == 1:
            out.extend((c.name, qty) for c in catalog)
        else:
            out.append((only.name if only else None, qty))
    return sorted(out, key=repr)


def _lines(lines: Sequence[tuple[str | None, Any]]) -> list[tuple[str | None, Decimal | None]]:
    return sorted(((name, None if q is None else Decimal(str(q))) for name, q in lines), key=repr)


def case(raw: str, catalog: list[CatalogItem], kind: str, lines: Sequence[tuple[str | None, Any]],
         note: Any = None, placed_for: str | None = None, deal_no: int | None = None) -> Any:
    return pytest.param(raw, catalog, kind, lines, note, placed_for, deal_no)


def check(raw: str, catalog: list[CatalogItem], kind: str, lines: Sequence[tuple[str | None, Any]],
          note: Any, placed_for: str | None, deal_no: int | None) -> None:
    intent = parse_member_message(normalize(raw), catalog)
    want = (kind, _lines(lines), placed_for, deal_no)
    assert isinstance(intent, OrderIntent), f"{raw!r}: expected {want}, got {intent!r}"
    got = (intent.kind, effective(intent, catalog), intent.placed_for, intent.deal_no)
    assert got == want, f"{raw!r}: expected {want}, got {got}"
    if note is not ANY:
        assert intent.note == note, f"{raw!r}: expected note {note!r}, got {intent.note!r}"


A, OJ, F = "山东富士苹果", "赣南脐橙", "富士苹果"
FO, FG = "赣南脐橙", "阳光玫瑰"

# --- one unit: SPEC's list and the ways neighbours actually write it ---------------------------

ONE_UNIT = [
    case("跟一单", APPLE, "order", [(A, 1)]),
    case("跟", APPLE, "order", [(A, 1)]),
    case("+1", APPLE, "order", [(A, 1)]),
    case("我也要", APPLE, "order", [(A, 1)]),
    case("算我一个", APPLE, "order", [(A, 1)]),
    case("来一份", APPLE, "order", [(A, 1)]),
    case("要", APPLE, "order", [(A, 1)]),
    case("接龙", APPLE, "order", [(A, 1)]),
    case("加我一份", APPLE, "order", [(A, 1)]),
    case("预定一箱", APPLE, "order", [(A, 1)]),
    case("跟一个", APPLE, "order", [(A, 1)]),
    case("跟团", APPLE, "order", [(A, 1)]),
    case("我跟一单", APPLE, "order", [(A, 1)]),
    case("我也跟一单", APPLE, "order", [(A, 1)]),
    case("跟一单~", APPLE, "order", [(A, 1)]),
    case("跟一单！", APPLE, "order", [(A, 1)]),
    case("跟一单 谢谢团长", APPLE, "order", [(A, 1)]),
    case("跟一单，辛苦团长", APPLE, "order", [(A, 1)]),
    case("我+1", APPLE, "order", [(A, 1)]),
    case("我也+1", APPLE, "order", [(A, 1)]),
    case("+1 谢谢", APPLE, "order", [(A, 1)]),
    case("算我一份", APPLE, "order", [(A, 1)]),
    case("我也来一份", APPLE, "order", [(A, 1)]),
    case("报名", APPLE, "order", [(A, 1)]),
    case("我要", APPLE, "order", [(A, 1)]),
    case("订一箱", APPLE, "order", [(A, 1)]),
    case("下单", APPLE, "order", [(A, 1)]),
    case("拍一单", APPLE, "order", [(A, 1)]),
    case("来一单", APPLE, "order", [(A, 1)]),
    case("算我", APPLE, "order", [(A, 1)]),
    case("加我", APPLE, "order", [(A, 1)]),
    case("跟上", APPLE, "order", [(A, 1)]),
    case("给我来一份", APPLE, "order", [(A, 1)]),
    case("我要一箱", APPLE, "order", [(A, 1)]),
    case("要1箱", APPLE, "order", [(A, 1)]),
    case("1箱", APPLE, "order", [(A, 1)]),
    case("一箱", APPLE, "order", [(A, 1)]),
    case("跟1单", APPLE, "order", [(A, 1)]),
    case("好的跟一单", APPLE, "order", [(A, 1)]),
    case("那我也跟一单", APPLE, "order", [(A, 1)]),
    case("我也要 谢谢", APPLE, "order", [(A, 1)]),
    case("团长，跟一单", APPLE, "order", [(A, 1)]),
    case("跟一單", APPLE, "order", [(A, 1)]),
    case("\u200b+1\u200b", APPLE, "order", [(A, 1)]),
    case("＋１", APPLE, "order", [(A, 1)]),
    case("跟一單🙏🙏", APPLE, "order", [(A, 1)]),
    case("要一个", DURIAN, "order", [("泰国榴莲", 1)]),
    case("我来一个", DURIAN, "order", [("泰国榴莲", 1)]),
    case("嗯嗯 要一个", DURIAN, "order", [("泰国榴莲", 1)]),
    case("预订一份", ZONGZI, "order", [("嘉兴肉粽", 1)]),
    case("我要一份", ZONGZI, "order", [("嘉兴肉粽", 1)]),
    case("定一份", ZONGZI, "order", [("嘉兴肉粽", 1)]),
    case("也给我来一份", ZONGZI, "order", [("嘉兴肉粽", 1)]),
    case("来1个", PINEAPPLE, "order", [("海南金钻凤梨", 1)]),
    case("我也要一盒", BLUEBERRY, "order", [("云南蓝莓", 1)]),
    case("@王团长 跟一单", BLUEBERRY, "order", [("云南蓝莓", 1)]),
    case("麻烦团长帮我留一箱", APPLE, "order", [(A, 1)]),
]


@pytest.mark.parametrize(("raw", "catalog", "kind", "lines", "note", "placed_for", "deal_no"), ONE_UNIT)
def test_one_unit(raw: str, catalog: list[CatalogItem], kind: str, lines: Any, note: Any,
                  placed_for: str | None, deal_no: int | None) -> None:
    check(raw, catalog, kind, lines, note, placed_for, deal_no)


# --- quantities with all kinds of units ----------------------------------------------------------

QUANTITY = [
    case("我要2箱", APPLE, "order", [(A, 2)]),
    case("两箱", APPLE, "order", [(A, 2)]),
    case("来三箱", APPLE, "order", [(A, 3)]),
    case("x2", APPLE, "order", [(A, 2)]),
    case("×2", APPLE, "order", [(A, 2)]),
    case("+2", APPLE, "order", [(A, 2)]),
    case("ｘ２", APPLE, "order", [(A, 2)]),
    case("2箱", APPLE, "order", [(A, 2)]),
    case("要五箱", APPLE, "order", [(A, 5)]),
    case("我家要三箱", APPLE, "order", [(A, 3)]),
    case("要两箱吧", APPLE, "order", [(A, 2)]),
    case("来4箱", APPLE, "order", [(A, 4)]),
    case("定两箱", APPLE, "order", [(A, 2)]),
    case("买两箱", APPLE, "order", [(A, 2)]),
    case("拿两箱", APPLE, "order", [(A, 2)]),
    case("我也要两箱", APPLE, "order", [(A, 2)]),
    case("那我也要一箱", APPLE, "order", [(A, 1)]),
    case("2箱苹果", APPLE, "order", [(A, 2)]),
    case("苹果2箱", APPLE, "order", [(A, 2)]),
    case("富士苹果来三箱", APPLE, "order", [(A, 3)]),
    case("要3箱苹果", APPLE, "order", [(A, 3)]),
    case("苹果要两箱", APPLE, "order", [(A, 2)]),
    case("我要３箱", APPLE, "order", [(A, 3)]),
    case("來兩箱", APPLE, "order", [(A, 2)]),
    case("要\u3000两箱", APPLE, "order", [(A, 2)]),
    case("我要2箱，谢谢团长", APPLE, "order", [(A, 2)]),
    case("团长，我要两箱", APPLE, "order", [(A, 2)]),
    case("十二份", ZONGZI, "order", [("嘉兴肉粽", 12)]),
    case("还能跟吗？来一箱", APPLE, "order", [(A, 1)]),
    case("还有货吗？我要两箱", APPLE, "order", [(A, 2)]),
    case("橙子来两箱", ORANGE, "order", [(OJ, 2)]),
    case("脐橙要3箱", ORANGE, "order", [(OJ, 3)]),
    case("我要一箱脐橙", ORANGE, "order", [(OJ, 1)]),
    case("两箱橙子", ORANGE, "order", [(OJ, 2)]),
    case("要两袋", RICE, "order", [("东北五常大米", 2)]),
    case("3袋", RICE, "order", [("东北五常大米", 3)]),
    case("来一袋", RICE, "order", [("东北五常大米", 1)]),
    case("大米要两袋", RICE, "order", [("东北五常大米", 2)]),
    case("米来5袋", RICE, "order", [("东北五常大米", 5)]),
    case("要两个", PINEAPPLE, "order", [("海南金钻凤梨", 2)]),
    case("两个", PINEAPPLE, "order", [("海南金钻凤梨", 2)]),
    case("来4个", PINEAPPLE, "order", [("海南金钻凤梨", 4)]),
    case("凤梨要3个", PINEAPPLE, "order", [("海南金钻凤梨", 3)]),
    case("要两盒", BLUEBERRY, "order", [("云南蓝莓", 2)]),
    case("来5盒", BLUEBERRY, "order", [("云南蓝莓", 5)]),
    case("蓝莓三盒", BLUEBERRY, "order", [("云南蓝莓", 3)]),
    case("两盒谢谢", BLUEBERRY, "order", [("云南蓝莓", 2)]),
    case("蓝莓x4", BLUEBERRY, "order", [("云南蓝莓", 4)]),
    case("要兩盒謝謝", BLUEBERRY, "order", [("云南蓝莓", 2)]),
    case("要两板", EGGS, "order", [("土鸡蛋", 2)]),
    case("一板", EGGS, "order", [("土鸡蛋", 1)]),
    case("鸡蛋来两板", EGGS, "order", [("土鸡蛋", 2)]),
    case("土鸡蛋要1板", EGGS, "order", [("土鸡蛋", 1)]),
    case("要五斤", PORK, "order", [("散养土猪五花肉", 5)]),
    case("要2.5斤", PORK, "order", [("散养土猪五花肉", "2.5")]),
    case("一斤半", PORK, "order", [("散养土猪五花肉", "1.5")]),
    case("要半斤", PORK, "order", [("散养土猪五花肉", "0.5")]),
    case("来两斤半", PORK, "order", [("散养土猪五花肉", "2.5")]),
    case("五花肉要3斤", PORK, "order", [("散养土猪五花肉", 3)]),
    case("肉要四斤", PORK, "order", [("散养土猪五花肉", 4)]),
    case("牛肉卷来两盒", BEEF, "order", [("内蒙古牛肉卷", 2)]),
    case("要6盒", BEEF, "order", [("内蒙古牛肉卷", 6)]),
    case("要4只", CRAB, "order", [("阳澄湖大闸蟹", 4)]),
    case("大闸蟹来8只", CRAB, "order", [("阳澄湖大闸蟹", 8)]),
    case("带鱼两袋", FISH, "order", [("舟山带鱼", 2)]),
    case("要一袋", FISH, "order", [("舟山带鱼", 1)]),
    case("要２個", DURIAN, "order", [("泰国榴莲", 2)]),
    case("兩個🙏", DURIAN, "order", [("泰国榴莲", 2)]),
    case("榴莲要一个", DURIAN, "order", [("泰国榴莲", 1)]),
    case("来俩", DURIAN, "order", [("泰国榴莲", 2)]),
    case("要6瓶", MILK, "order", [("新希望鲜牛奶", 6)]),
    case("牛奶来两瓶", MILK, "order", [("新希望鲜牛奶", 2)]),
    case("鲜奶要十瓶", MILK, "order", [("新希望鲜牛奶", 10)]),
    case("要3包", DUMPLING, "order", [("手工水饺", 3)]),
    case("两包", DUMPLING, "order", [("手工水饺", 2)]),
    case("水饺来五包", DUMPLING, "order", [("手工水饺", 5)]),
    case("要一件", TISSUE, "order", [("维达抽纸", 1)]),
    case("来2件", TISSUE, "order", [("维达抽纸", 2)]),
    case("抽纸要两件", TISSUE, "order", [("维达抽纸", 2)]),
    case("要10串", SKEWER, "order", [("新疆羊肉串", 10)]),
    case("羊肉串来二十串", SKEWER, "order", [("新疆羊肉串", 20)]),
    case("来20串", SKEWER, "order", [("新疆羊肉串", 20)]),
    case("要一只", DUCK, "order", [("北京烤鸭", 1)]),
    case("烤鸭来两只", DUCK, "order", [("北京烤鸭", 2)]),
    case("来半只", DUCK, "order", [("北京烤鸭", "0.5")]),
    case("来三份", ZONGZI, "order", [("嘉兴肉粽", 3)]),
    case("2份", ZONGZI, "order", [("嘉兴肉粽", 2)]),
    case("要五份", ZONGZI, "order", [("嘉兴肉粽", 5)]),
    case("两份", ZONGZI, "order", [("嘉兴肉粽", 2)]),
    case("草莓要两盒", STRAWBERRY, "order", [("丹东草莓", 2)]),
    case("给我来两盒吧团长", STRAWBERRY, "order", [("丹东草莓", 2)]),
    case("我来两盒！", STRAWBERRY, "order", [("丹东草莓", 2)]),
    case("来3盒草莓", STRAWBERRY, "order", [("丹东草莓", 3)]),
]


@pytest.mark.parametrize(("raw", "catalog", "kind", "lines", "note", "placed_for", "deal_no"), QUANTITY)
def test_quantity(raw: str, catalog: list[CatalogItem], kind: str, lines: Any, note: Any,
                  placed_for: str | None, deal_no: int | None) -> None:
    check(raw, catalog, kind, lines, note, placed_for, deal_no)


# --- several items, item numbers, "each", two open deals ---------------------------------------

SEVERAL = [
    case("苹果2箱 橙子1箱", FRUIT, "order", [(F, 2), (FO, 1)]),
    case("1号两份 3号一份", FRUIT, "order", [(F, 2), (FG, 1)]),
    case("各一份", FRUIT, "order", [(F, 1), (FO, 1), (FG, 1)]),
    case("都要一份", FRUIT, "order", [(F, 1), (FO, 1), (FG, 1)]),
    case("每样一份", FRUIT, "order", [(F, 1), (FO, 1), (FG, 1)]),
    case("都来一份", FRUIT, "order", [(F, 1), (FO, 1), (FG, 1)]),
    case("橙子+1", FRUIT, "order", [(FO, 1)]),
    case("阳光玫瑰来两串", FRUIT, "order", [(FG, 2)]),
    case("玫瑰两串", FRUIT, "order", [(FG, 2)]),
    case("+1", FRUIT, "order", [(None, 1)]),  # which item? the handler asks
    case("要两箱", FRUIT, "order", [(None, 2)]),  # which item? the handler asks
    case("苹果一箱，橙子两箱", FRUIT, "order", [(F, 1), (FO, 2)]),
    case("富士苹果x2 脐橙x1", FRUIT, "order", [(F, 2), (FO, 1)]),
    case("脐橙3箱", FRUIT, "order", [(FO, 3)]),
    case("1号2箱", FRUIT, "order", [(F, 2)]),
    case("要2号三箱", FRUIT, "order", [(FO, 3)]),
    case("第三个来两串", FRUIT, "order", [(FG, 2)]),
    case("苹果和橙子各一箱", FRUIT, "order", [(F, 1), (FO, 1)]),
    case("苹果要", FRUIT, "order", [(F, 1)]),
    case("苹果+1 橙子+2", FRUIT, "order", [(F, 1), (FO, 2)]),
    case("1号+1", FRUIT, "order", [(F, 1)]),
    case("2号+1", FRUIT, "order", [(FO, 1)]),
    case("3号两串", FRUIT, "order", [(FG, 2)]),
    case("我要1号", FRUIT, "order", [(F, 1)]),
    case("要一箱苹果", FRUIT, "order", [(F, 1)]),
    case("两箱苹果一箱橙子", FRUIT, "order", [(F, 2), (FO, 1)]),
    case("苹果橙子各两箱", FRUIT, "order", [(F, 2), (FO, 2)]),
    case("苹果、橙子都要一箱", FRUIT, "order", [(F, 1), (FO, 1)]),
    case("1号和3号各两份", FRUIT, "order", [(F, 2), (FG, 2)]),
    case("苹果2箱，橙子也来一箱", FRUIT, "order", [(F, 2), (FO, 1)]),
    case("阳光玫瑰一串 富士苹果一箱", FRUIT, "order", [(FG, 1), (F, 1)]),
    case("蘋果兩箱 橙子一箱", FRUIT, "order", [(F, 2), (FO, 1)]),
    case("鲜肉包两袋 馒头一袋", BREAKFAST, "order", [("鲜肉包", 2), ("手工馒头", 1)]),
    case("豆沙包3袋", BREAKFAST, "order", [("豆沙包", 3)]),
    case("肉包一袋", BREAKFAST, "order", [("鲜肉包", 1)]),
    case("馒头来两袋", BREAKFAST, "order", [("手工馒头", 2)]),
    case("豆沙包和馒头各一袋", BREAKFAST, "order", [("豆沙包", 1), ("手工馒头", 1)]),
    case("2号两袋", BREAKFAST, "order", [("豆沙包", 2)]),
    case("樱桃+1", TWO_DEALS, "order", [("烟台大樱桃", 1)]),
    case("萝卜要两箱", TWO_DEALS, "order", [("潍坊萝卜", 2)]),
    case("樱桃来两盒", TWO_DEALS, "order", [("烟台大樱桃", 2)]),
    case("大樱桃一盒", TWO_DEALS, "order", [("烟台大樱桃", 1)]),
    case("两盒樱桃 一箱萝卜", TWO_DEALS, "order", [("烟台大樱桃", 2), ("潍坊萝卜", 1)]),
    case("#2 +1", TWO_DEALS, "order", [(None, 1)], deal_no=2),
    case("#1 要3盒", TWO_DEALS, "order", [(None, 3)], deal_no=1),
    case("2号团来两箱", TWO_DEALS, "order", [(None, 2)], deal_no=2),
    case("跟一单", TWO_DEALS, "order", [(None, 1)]),  # which deal? the handler asks
]


@pytest.mark.parametrize(("raw", "catalog", "kind", "lines", "note", "placed_for", "deal_no"), SEVERAL)
def test_several_items(raw: str, catalog: list[CatalogItem], kind: str, lines: Any, note: Any,
                       placed_for: str | None, deal_no: int | None) -> None:
    check(raw, catalog, kind, lines, note, placed_for, deal_no)


# --- changes: set, add, subtract ------------------------------------------------------------------

CHANGES = [
    case("改成3箱", APPLE, "set", [(A, 3)]),
    case("改为两箱", APPLE, "set", [(A, 2)]),
    case("改2箱", APPLE, "set", [(A, 2)]),
    case("改成一箱吧", APPLE, "set", [(A, 1)]),
    case("改成3箱吧", APPLE, "set", [(A, 3)]),
    case("我的改成4箱", APPLE, "set", [(A, 4)]),
    case("改成３箱", APPLE, "set", [(A, 3)]),
    case("不好意思改成1箱", APPLE, "set", [(A, 1)], note=ANY),
    case("改成3个", PINEAPPLE, "set", [("海南金钻凤梨", 3)]),
    case("换成5斤", PORK, "set", [("散养土猪五花肉", 5)]),
    case("改成2.5斤", PORK, "set", [("散养土猪五花肉", "2.5")]),
    case("改成两斤半", PORK, "set", [("散养土猪五花肉", "2.5")]),
    case("数量改为5盒", BLUEBERRY, "set", [("云南蓝莓", 5)]),
    case("我改一下，要4盒", BLUEBERRY, "set", [("云南蓝莓", 4)], note=ANY),
    case("帮我改成两袋", RICE, "set", [("东北五常大米", 2)]),
    case("苹果改成2箱", FRUIT, "set", [(F, 2)]),
    case("橙子改成3箱", FRUIT, "set", [(FO, 3)]),
    case("再加一箱", APPLE, "order", [(A, 1)]),
    case("加一箱", APPLE, "order", [(A, 1)]),
    case("再来一份", ZONGZI, "order", [("嘉兴肉粽", 1)]),
    case("再要两盒", BLUEBERRY, "order", [("云南蓝莓", 2)]),
    case("追加2袋", RICE, "order", [("东北五常大米", 2)]),
    case("多要一个", PINEAPPLE, "order", [("海南金钻凤梨", 1)]),
    case("再加两斤", PORK, "order", [("散养土猪五花肉", 2)]),
    case("再来两个", DURIAN, "order", [("泰国榴莲", 2)]),
    case("再加1件", TISSUE, "order", [("维达抽纸", 1)]),
    case("苹果再加一箱", FRUIT, "order", [(F, 1)]),
    case("减一箱", APPLE, "sub", [(A, 1)]),
    case("减1箱", APPLE, "sub", [(A, 1)]),
    case("减少一份", ZONGZI, "sub", [("嘉兴肉粽", 1)]),
    case("少要一个", PINEAPPLE, "sub", [("海南金钻凤梨", 1)]),
    case("去掉一盒", BLUEBERRY, "sub", [("云南蓝莓", 1)]),
    case("减掉两斤", PORK, "sub", [("散养土猪五花肉", 2)]),
    case("减1袋", RICE, "sub", [("东北五常大米", 1)]),
    case("我减一个", DURIAN, "sub", [("泰国榴莲", 1)]),
    case("橙子减一箱", FRUIT, "sub", [(FO, 1)]),
]


@pytest.mark.parametrize(("raw", "catalog", "kind", "lines", "note", "placed_for", "deal_no"), CHANGES)
def test_changes(raw: str, catalog: list[CatalogItem], kind: str, lines: Any, note: Any,
                 placed_for: str | None, deal_no: int | None) -> None:
    check(raw, catalog, kind, lines, note, placed_for, deal_no)


# --- cancels: all of the speaker's lines, or one item ---------------------------------------------

CANCELS = [
    case("取消", APPLE, "cancel", [(A, None)]),
    case("不要了", APPLE, "cancel", [(A, None)]),
    case("撤单", APPLE, "cancel", [(A, None)]),
    case("取消订单", APPLE, "cancel", [(A, None)]),
    case("我不要了", APPLE, "cancel", [(A, None)]),
    case("算了不要了", APPLE, "cancel", [(A, None)]),
    case("那不要了", APPLE, "cancel", [(A, None)]),
    case("啊？那不要了", APPLE, "cancel", [(A, None)]),
    case("不跟了", APPLE, "cancel", [(A, None)]),
    case("取消吧", APPLE, "cancel", [(A, None)]),
    case("撤单吧", APPLE, "cancel", [(A, None)]),
    case("退单", APPLE, "cancel", [(A, None)]),
    case("我不买了", APPLE, "cancel", [(A, None)]),
    case("帮我取消一下", APPLE, "cancel", [(A, None)]),
    case("不好意思，取消一下", APPLE, "cancel", [(A, None)]),
    case("取消我的订单", APPLE, "cancel", [(A, None)]),
    case("不要了，谢谢", APPLE, "cancel", [(A, None)]),
    case("不要了！", APPLE, "cancel", [(A, None)]),
    case("取消訂單", APPLE, "cancel", [(A, None)]),
    case("苹果不要了", APPLE, "cancel", [(A, None)]),
    case("不要了", FRUIT, "cancel", [(None, None)]),  # every line on the deal
    case("苹果不要了", FRUIT, "cancel", [(F, None)]),
    case("橙子不要了", FRUIT, "cancel", [(FO, None)]),
    case("阳光玫瑰不要了", FRUIT, "cancel", [(FG, None)]),
    case("取消橙子", FRUIT, "cancel", [(FO, None)]),
    case("2号不要了", FRUIT, "cancel", [(FO, None)]),
    case("馒头不要了", BREAKFAST, "cancel", [("手工馒头", None)]),
    case("樱桃不要了", TWO_DEALS, "cancel", [("烟台大樱桃", None)]),
]


@pytest.mark.parametrize(("raw", "catalog", "kind", "lines", "note", "placed_for", "deal_no"), CANCELS)
def test_cancels(raw: str, catalog: list[CatalogItem], kind: str, lines: Any, note: Any,
                 placed_for: str | None, deal_no: int | None) -> None:
    check(raw, catalog, kind, lines, note, placed_for, deal_no)


# --- on behalf of someone else, or for oneself in other words -------------------------------------

BEHALF = [
    case("帮王阿姨订一份", ZONGZI, "order", [("嘉兴肉粽", 1)], "代王阿姨", "王阿姨"),
    case("帮王阿姨订一斤", PORK, "order", [("散养土猪五花肉", 1)], "代王阿姨", "王阿姨"),
    case("幫王阿姨訂一份", APPLE, "order", [(A, 1)], "代王阿姨", "王阿姨"),
    case("替李奶奶要两箱", APPLE, "order", [(A, 2)], "代李奶奶", "李奶奶"),
    case("代陈阿姨下单一盒", BLUEBERRY, "order", [("云南蓝莓", 1)], "代陈阿姨", "陈阿姨"),
    case("帮老周拿两袋", RICE, "order", [("东北五常大米", 2)], "代老周", "老周"),
    case("帮小美也来一份", ZONGZI, "order", [("嘉兴肉粽", 1)], "代小美", "小美"),
    case("给刘奶奶留一只", DUCK, "order", [("北京烤鸭", 1)], "代刘奶奶", "刘奶奶"),
    case("帮张姐订两板", EGGS, "order", [("土鸡蛋", 2)], "代张姐", "张姐"),
    case("帮赵叔买一件", TISSUE, "order", [("维达抽纸", 1)], "代赵叔", "赵叔"),
    case("帮李姐带3斤", PORK, "order", [("散养土猪五花肉", 3)], "代李姐", "李姐"),
    case("帮我带两斤", PORK, "order", [("散养土猪五花肉", 2)]),
    case("给我留三斤", PORK, "order", [("散养土猪五花肉", 3)]),
    case("给我留两份", ZONGZI, "order", [("嘉兴肉粽", 2)]),
    case("給我留兩斤", PORK, "order", [("散养土猪五花肉", 2)]),
    case("帮我订一箱", APPLE, "order", [(A, 1)]),
    case("帮忙留一份", ZONGZI, "order", [("嘉兴肉粽", 1)]),
    case("给我带两盒", BLUEBERRY, "order", [("云南蓝莓", 2)]),
    case("帮我也来一份", ZONGZI, "order", [("嘉兴肉粽", 1)]),
]


@pytest.mark.parametrize(("raw", "catalog", "kind", "lines", "note", "placed_for", "deal_no"), BEHALF)
def test_on_behalf(raw: str, catalog: list[CatalogItem], kind: str, lines: Any, note: Any,
                   placed_for: str | None, deal_no: int | None) -> None:
    check(raw, catalog, kind, lines, note, placed_for, deal_no)


# --- the rest of the message is the order's note -------------------------------------------------

NOTES = [
    case("3号楼302 李阿姨 2箱", APPLE, "order", [(A, 2)], "3号楼302 李阿姨"),
    case("要一箱，放门卫", APPLE, "order", [(A, 1)], "放门卫"),
    case("李阿姨 3号楼 2箱", APPLE, "order", [(A, 2)], "李阿姨 3号楼"),
    case("12栋 王姐 一箱", APPLE, "order", [(A, 1)], "12栋 王姐"),
    case("2箱 5栋1单元", APPLE, "order", [(A, 2)], "5栋1单元"),
    case("要一箱 放快递柜", APPLE, "order", [(A, 1)], "放快递柜"),
    case("跟一单 3号楼", APPLE, "order", [(A, 1)], "3号楼"),
    case("+1 6栋2单元", APPLE, "order", [(A, 1)], "6栋2单元"),
    case("5-2-301 一箱", APPLE, "order", [(A, 1)], "5-2-301"),
    case("王奶奶 1箱", APPLE, "order", [(A, 1)], "王奶奶"),
    case("小区东门 刘 2箱", APPLE, "order", [(A, 2)], "小区东门 刘"),
    case("两箱，晚上7点后在家", APPLE, "order", [(A, 2)], "晚上7点后在家"),
    case("3号楼302 两袋", FISH, "order", [("舟山带鱼", 2)], "3号楼302"),
    case("7-1201 宋 3袋", FISH, "order", [("舟山带鱼", 3)], "7-1201 宋"),
    case("一袋 放南门驿站", FISH, "order", [("舟山带鱼", 1)], "放南门驿站"),
    case("8号楼1802 两盒", BLUEBERRY, "order", [("云南蓝莓", 2)], "8号楼1802"),
    case("17号楼 2单元 1101 三盒", BLUEBERRY, "order", [("云南蓝莓", 3)], "17号楼 2单元 1101"),
    case("要2盒 明天下午来拿", BLUEBERRY, "order", [("云南蓝莓", 2)], "明天下午来拿"),
    case("要两斤，肥瘦相间的", PORK, "order", [("散养土猪五花肉", 2)], "肥瘦相间的"),
    case("要一只，不要切", DUCK, "order", [("北京烤鸭", 1)], "不要切"),
    case("9栋 陈 两包", DUMPLING, "order", [("手工水饺", 2)], "9栋 陈"),
    case("@王团长 要两箱", APPLE, "order", [(A, 2)], None),
    case("我要两箱，3号楼302", APPLE, "order", [(A, 2)], "3号楼302"),
    case("+1，3号楼", APPLE, "order", [(A, 1)], "3号楼"),
]


@pytest.mark.parametrize(("raw", "catalog", "kind", "lines", "note", "placed_for", "deal_no"), NOTES)
def test_notes(raw: str, catalog: list[CatalogItem], kind: str, lines: Any, note: Any,
               placed_for: str | None, deal_no: int | None) -> None:
    check(raw, catalog, kind, lines, note, placed_for, deal_no)


# --- a range is asked about, never guessed ----------------------------------------------------------

@pytest.mark.parametrize(("raw", "catalog"), [
    ("苹果两三箱", FRUIT),
    ("要个两三袋", RICE),
    ("来三五个", PINEAPPLE),
    ("二三十串", SKEWER),
])
def test_range_is_asked(raw: str, catalog: list[CatalogItem]) -> None:
    got = parse_member_message(normalize(raw), catalog)
    assert isinstance(got, Ambiguous), f"{raw!r}: expected Ambiguous, got {got!r}"


# --- noise: nothing is recorded -------------------------------------------------------------------

NOISE_APPLE = [
    # questions
    "苹果甜不甜？", "几号到货？", "还有吗", "还能跟吗？", "还有货吗", "多少钱一箱", "一箱多少斤？",
    "一箱有几个", "一箱几斤", "甜吗", "好吃吗", "是新鲜的吗", "今天能到吗", "几点截团", "什么时候发货",
    "明天几点到", "3号楼可以送吗", "1箱有多重", "5斤装的吗", "一箱是9斤吗", "39.9一箱吗", "还剩3箱吗？",
    "剩几箱了", "能不能便宜点", "可以送到楼上吗", "能放门卫吗", "要冷藏吗", "要不要洗", "要多久到",
    "要等到什么时候", "要是不甜能退吗", "是预售吗", "团长在吗", "在吗", "有人吗", "这个可以开发票吗",
    "你们都要几箱", "大家要几箱", "一人限购几箱", "限购5箱吗", "每人限购5箱？", "能不能多要几箱",
    "周六送吗", "33号楼在哪", "不要了吗？", "苹果还要不要？", "取消团购了吗", "谁取消了", "蘋果甜不甜？",
    "今天几号", "明天下雨吗", "我要问一下，几点截团", "快递到了吗", "有人拼车吗", "一起拼吗",
    # thanks and chatter
    "谢谢团长", "收到", "哈哈哈", "团长辛苦了", "辛苦了", "好的", "好的收到", "谢谢", "嗯嗯", "晚安",
    "早上好", "大家早", "早", "哈哈", "OK", "ok👌", "好评", "太好吃了", "苹果很甜，推荐", "我们家孩子超爱吃",
    "团长推荐的都好", "冲冲冲", "又涨价了", "电梯坏了", "谁家的猫跑出来了", "楼下超市关门了", "今天停水",
    "我在门口了", "我到了", "马上到", "在路上", "刚看到", "看起来不错", "我看看", "再看看", "考虑一下",
    "我想想", "明天再说", "下次吧", "快成团了", "好多人啊", "已经20箱了", "还差3箱", "抢到了",
    "比超市便宜", "超市卖50一箱", "去年这个时候才30", "39.9元太贵了", "谢謝團長", "红包发了", "已转账",
    "已付款39.9", "来了", "来了来了", "我来晚了", "我要疯了", "要下雨了", "我要上班", "跟你说",
    "跟团长说了", "不要催了", "不要香菜", "我家3口人", "我家孩子3岁", "买了吗", "你们买了吗",
    "好的，我知道了",
    "666", "88", "520", "11.11", "39.9", "13812345678", "尾号5678", "取件码 3-2-1102",
    # agreeing with a question
    "同问+1", "我也想知道+1", "同问", "同求", "+1同问", "同问 +1", "我也想知道", "我也想问+1",
    "+1 我也想知道",
    "同问，几号到", "同问+1 几点截团", "同問+1", "楼上说得对+1", "赞同+1",
    # numbers that are addresses, times or past purchases
    "我住3号楼", "我住3号楼，能送上楼吗", "我在2号楼3单元601", "我住5栋2单元", "我在7号楼", "3栋1单元502",
    "我家在12楼", "1号楼的快来拿", "3单元的请注意", "2栋的邻居，快递放错了", "2号线地铁口",
    "8点到吗", "8点前能到吗", "明天8点能到吗", "晚上8点前到", "下午3点来拿", "我下午3点来拿",
    "明天下午3点发货", "周六上午10点送", "28号到", "11月28日到货", "还有2天截团", "3小时后截团", "12点了",
    "十点半集合", "5分钟后到", "10分钟到",
    "上次买的2箱很好吃", "上回买了3箱，孩子很爱吃", "之前买过两箱", "之前买过两箱，很甜", "去年买了5箱",
    "上次买的很好吃", "上次买了2箱", "我家已经吃了3箱了", "我买了2箱，什么时候到", "昨天到了5箱",
    "昨天拿了2箱", "收了3箱，谢谢团长", "我订的2箱还没到", "昨天的2箱还没到", "我订了3箱",
    "家里还有2箱没吃完",
    "我家有2箱", "我已经跟了", "已跟", "已接龙",
    # emoji and stickers
    "👍👍", "👍", "🙏", "🙏🙏", "😂😂😂", "🌹", "❤️", "[强]", "[强][强]", "[玫瑰]", "[捂脸]", "[OK]",
    # status queries are not orders
    "我的订单", "查单", "我买了啥", "进度", "还差几箱",
]

NOISE_OTHER = [
    ("草莓是99还是红颜？", STRAWBERRY),
    ("上次买的2盒很好吃", STRAWBERRY),
    ("放1楼快递柜", STRAWBERRY),
    ("樱桃", TWO_DEALS),  # an answer to a question, not an order by itself
    ("橙子甜吗？", FRUIT),
    ("1号是什么苹果", FRUIT),
    ("3号是阳光玫瑰吗", FRUIT),
    ("五花肉肥不肥", PORK),
    ("一斤多少钱", PORK),
    ("上次的五花肉很香", PORK),
]


@pytest.mark.parametrize("raw", NOISE_APPLE)
def test_noise_records_nothing(raw: str) -> None:
    got = parse_member_message(normalize(raw), APPLE)
    assert got is None, f"{raw!r}: expected None, got {got!r}"


@pytest.mark.parametrize(("raw", "catalog"), NOISE_OTHER)
def test_noise_records_nothing_other_deals(raw: str, catalog: list[CatalogItem]) -> None:
    got = parse_member_message(normalize(raw), catalog)
    assert got is None, f"{raw!r}: expected None, got {got!r}"


# --- status queries -------------------------------------------------------------------------------

STATUS = [
    ("我的订单", "mine", None),
    ("查单", "mine", None),
    ("我买了啥", "mine", None),
    ("我买了什么", "mine", None),
    ("我订了多少", "mine", None),
    ("我订了啥", "mine", None),
    ("我定了哪些", "mine", None),
    ("查一下我的订单", "mine", None),
    ("查订单", "mine", None),
    ("我的单子", "mine", None),
    ("团长，查单", "mine", None),
    ("查一下我的", "mine", None),
    ("我的订单 #2", "mine", 2),
    ("#3 我的订单", "mine", 3),
    ("我的訂單", "mine", None),
    ("进度", "progress", None),
    ("还差几箱", "progress", None),
    ("还差几箱成团？", "progress", None),
    ("还差多少", "progress", None),
    ("差几箱成团", "progress", None),
    ("成团了吗", "progress", None),
    ("成团没", "progress", None),
    ("现在多少箱了", "progress", None),
    ("接了多少了", "progress", None),
    ("卖了多少", "progress", None),
    ("几箱了", "progress", None),
    ("多少份了", "progress", None),
    ("够了吗", "progress", None),
    ("苹果还差几箱", "progress", None),
    ("#2 进度", "progress", 2),
    ("进度 #3", "progress", 3),
    ("进度怎么样了", "progress", None),
    ("團長，進度", "progress", None),
]


@pytest.mark.parametrize(("raw", "kind", "deal_no"), STATUS)
def test_status_query(raw: str, kind: str, deal_no: int | None) -> None:
    got = classify_status(normalize(raw))
    assert got == StatusQuery(kind, deal_no), f"{raw!r}: expected {kind} #{deal_no}, got {got!r}"  # type: ignore[arg-type]


NOT_STATUS = [
    "要3箱",
    "跟一单",
    "我要2箱",
    "苹果甜不甜",
    "谢谢团长",
    "我买了2箱",
    "我订了3箱",
    "多少钱一箱",
    "一箱多少斤",
    "我的天",
    "取消",
    "几号到货？",
    # a status word inside an order: the order must not be swallowed by a status reply
    "还差几箱？我来两箱",
    "成团了吗？那我也要一箱",
]


@pytest.mark.parametrize("raw", NOT_STATUS)
def test_not_a_status_query(raw: str) -> None:
    got = classify_status(normalize(raw))
    assert got is None, f"{raw!r}: expected None, got {got!r}"


def test_enough_distinct_utterances() -> None:
    texts = [p.values[0] for p in ONE_UNIT + QUANTITY + SEVERAL + CHANGES + CANCELS + BEHALF + NOTES]
    texts += NOISE_APPLE + [t for t, _ in NOISE_OTHER] + [t for t, _, _ in STATUS] + NOT_STATUS
    assert len(set(texts)) >= 300


@pytest.mark.parametrize(("raw", "qty", "note"), [
    ("3号楼1201 Lisa 3袋", Decimal(3), "3号楼1201 lisa"),
    ("702 Lucy 要一斤", Decimal(1), "702 lucy"),
    ("1201 Grace 两袋", Decimal(2), "1201 grace"),
])
def test_a_latin_name_after_a_number_is_no_unit(raw: str, qty: Decimal, note: str) -> None:
    intent = parse_member_message(normalize(raw), RICE)
    assert isinstance(intent, OrderIntent)
    assert [ln.qty for ln in intent.lines] == [qty]
    assert intent.note == note


@pytest.mark.parametrize(("raw", "more"), [("再加两个", True), ("再来一份", True), ("追加2袋", True),
                                           ("要两个", False), ("加我一份", False)])
def test_more_marks_an_addition_to_what_the_member_has(raw: str, more: bool) -> None:
    intent = parse_member_message(normalize(raw), FRUIT)
    assert isinstance(intent, OrderIntent)
    assert intent.more is more


@pytest.mark.parametrize("raw", ["6.8一斤，明晚8点截", "268一箱", "300g一份，79一份", "30枚一盒，38一盒",
                                 "5斤装", "猪肉荠菜，18一袋，一袋30个", "500克一袋，26一袋"])
def test_a_price_or_pack_size_is_no_order(raw: str) -> None:
    intent = parse_member_message(normalize(raw), PORK)
    assert intent is None or (isinstance(intent, OrderIntent) and not intent.explicit)


@pytest.mark.parametrize(("raw", "qty"), [("打错了，是6斤", 6), ("不对，3斤", 3), ("说错了，要3斤", 3),
                                          ("打错了是1.5斤", 1.5)])
def test_a_self_correction_sets_the_quantity(raw: str, qty: float) -> None:
    intent = parse_member_message(normalize(raw), PORK)
    assert isinstance(intent, OrderIntent)
    assert intent.kind == "set"
    assert [ln.qty for ln in intent.lines] == [Decimal(str(qty))]


def test_cancel_then_an_order_is_the_new_total() -> None:
    intent = parse_member_message(normalize("哦取消了，那水饺要两袋"), DUMPLING)
    assert isinstance(intent, OrderIntent)
    assert (intent.kind, [ln.qty for ln in intent.lines]) == ("set", [Decimal(2)])


@pytest.mark.parametrize(("raw", "explicit"), [("今天就8斤", False), ("两斤", False), ("要两斤", True),
                                               ("+1", True), ("跟一单", True)])
def test_explicit_tells_an_order_verb_from_a_bare_quantity(raw: str, explicit: bool) -> None:
    intent = parse_member_message(normalize(raw), PORK)
    assert isinstance(intent, OrderIntent)
    assert intent.explicit is explicit


@pytest.mark.parametrize(("raw", "kind", "qty"), [
    ("3️⃣箱", "order", 3), ("俩", "order", 2), ("仨", "order", 3),
    ("我那份不要了", "cancel", None), ("撤回我的单，谢谢", "cancel", None), ("全部取消吧", "cancel", None),
])
def test_fifth_round_wordings(raw: str, kind: str, qty: int | None) -> None:
    intent = parse_member_message(normalize(raw), APPLE)
    assert isinstance(intent, OrderIntent)
    assert intent.kind == kind
    assert [ln.qty for ln in intent.lines] == [None if qty is None else Decimal(qty)]


def test_a_range_is_filled_by_the_answer() -> None:
    assert fill_range("虾来两三盒", "那就三盒吧") == "虾来三盒"
    assert fill_range("要2-3箱", "3箱") == "要3箱"
    assert fill_range("要两箱", "3箱") is None


@pytest.mark.parametrize(("raw", "kind"), [("我都订了些啥", "mine"), ("查下我的单", "mine")])
def test_more_status_wordings(raw: str, kind: str) -> None:
    query = classify_status(normalize(raw))
    assert query is not None
    assert query.kind == kind


# --- blind set h: corrections, polite cancels, shares per person, weights, stickers --------------

EGGS = single("土鸡蛋", "板")
PORK = single("黑猪肉", "斤")


@pytest.mark.parametrize(("raw", "catalog", "kind", "qty"), [
    ("我要3板 不对 2板", EGGS, "order", "2"),             # the later number replaces the earlier
    ("要2板，哦不，要3板", EGGS, "order", "3"),
    ("要3板，不对，改成2板", EGGS, "set", "2"),
    ("我和我老公各一板", EGGS, "order", "2"),              # one each for two people
    ("我们仨各一板", EGGS, "order", "3"),
    ("我妈和我姨各两板", EGGS, "order", "4"),
    ("1.5kg", PORK, "order", "3"),                        # weights convert to the deal's unit
    ("要一公斤", PORK, "order", "2"),
    ("500g", PORK, "order", "1"),
    ("三板 家里聚餐", EGGS, "order", "3"),                 # a reason is a note, not a sentence
    ("土鸡蛋来一板[玫瑰]", EGGS, "order", "1"),            # a sticker is not a second mention
    ("那我先不要了哈 不好意思", EGGS, "cancel", None),
    ("不好意思 不要了", EGGS, "cancel", None),
    ("不要了不要了", EGGS, "cancel", None),
    ("那天有事 不要了", EGGS, "cancel", None),
    ("团长 帮我撤一下单", EGGS, "cancel", None),
])
def test_blind_set_h_phenomena(raw: str, catalog: list[CatalogItem], kind: str, qty: str | None) -> None:
    intent = parse_member_message(normalize(raw), catalog)
    assert isinstance(intent, OrderIntent), raw
    assert intent.kind == kind, raw
    assert [ln.qty for ln in intent.lines] == [None if qty is None else Decimal(qty)], raw


@pytest.mark.parametrize("raw", ["他说不要了", "[强][玫瑰]", "不对吧", "1.5kg"])
def test_blind_set_h_non_orders(raw: str) -> None:
    """Someone else's cancel, stickers alone, a complaint; 1.5kg of eggs sold by the 板 asks."""
    intent = parse_member_message(normalize(raw), EGGS)
    assert intent is None or isinstance(intent, Ambiguous), raw


@pytest.mark.parametrize("raw", ["我也是", "同上", "一样", "我也一样", "一样的"])
def test_same_as_under_a_quoted_order(raw: str) -> None:
    assert is_same_as(normalize(raw))


def test_how_many_people_is_a_progress_question() -> None:
    assert classify_status(normalize("现在几个人了")) == StatusQuery("progress", None)


LAWEI = multi(("广式腊肠", "斤"), ("五香牛肉干", "袋"), ("湘西腊肉", "斤"), ("土笋冻", "份"))


@pytest.mark.parametrize(("raw", "item"), [
    ("那要一袋", "五香牛肉干"),  # only the jerky comes in 袋
    ("再来两袋", "五香牛肉干"),
    ("要两斤", None),  # two items in 斤: which one is asked
    ("来两份", None),  # 份 stands for any item, even though one item is sold in 份
    ("要一个", None),
])
def test_a_unit_only_one_item_is_sold_in_names_that_item(raw: str, item: str | None) -> None:
    intent = parse_member_message(normalize(raw), LAWEI)
    assert isinstance(intent, OrderIntent)
    assert [ln.item.name if ln.item else None for ln in intent.lines] == [item]
