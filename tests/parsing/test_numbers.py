"""Chinese and Arabic numerals, and the quantities members write in an order."""

from __future__ import annotations

from decimal import Decimal

import pytest

from handlers.parsing.numbers import RangeError, format_qty, parse_numeral
from handlers.parsing.order import Ambiguous, CatalogItem, OrderIntent, parse_member_message
from handlers.parsing.text import normalize

# --- parse_numeral: one numeral span -------------------------------------------------------

NUMERALS = [
    # Arabic, with decimals
    ("1", "1"),
    ("2", "2"),
    ("12", "12"),
    ("105", "105"),
    ("2.5", "2.5"),
    ("0.5", "0.5"),
    ("39.9", "39.9"),
    # single Chinese digits, including colloquial and financial forms
    ("零", "0"),
    ("〇", "0"),
    ("一", "1"),
    ("幺", "1"),
    ("壹", "1"),
    ("两", "2"),
    ("二", "2"),
    ("俩", "2"),
    ("贰", "2"),
    ("仨", "3"),
    ("叁", "3"),
    ("五", "5"),
    ("捌", "8"),
    ("九", "9"),
    # tens
    ("十", "10"),
    ("十二", "12"),
    ("十五", "15"),
    ("一十二", "12"),
    ("二十", "20"),
    ("二十五", "25"),
    ("五十", "50"),
    ("九十九", "99"),
    ("贰拾", "20"),
    ("玖拾玖", "99"),
    ("廿", "20"),
    ("廿三", "23"),
    ("卅", "30"),
    # hundreds and thousands, with 零 and the trailing-digit shorthand
    ("一百", "100"),
    ("一百零五", "105"),
    ("三百零六", "306"),
    ("一百一十", "110"),
    ("一百一", "110"),
    ("一百五", "150"),
    ("两百", "200"),
    ("伍佰", "500"),
    ("一千", "1000"),
    ("一千零一", "1001"),
    ("两千三", "2300"),
    ("三千五", "3500"),
    # 万
    ("一万", "10000"),
    ("两万", "20000"),
    ("一万二", "12000"),
    ("一万零五", "10005"),
]


@pytest.mark.parametrize(("text", "expected"), NUMERALS)
def test_parse_numeral(text: str, expected: str) -> None:
    got = parse_numeral(text)
    assert isinstance(got, Decimal)
    assert got == Decimal(expected), f"{text!r}: expected {expected}, got {got}"


RANGES = ["两三", "三五", "五六", "七八", "三四", "一两", "十一二", "二三十"]


@pytest.mark.parametrize("text", RANGES)
def test_parse_numeral_range_is_never_guessed(text: str) -> None:
    with pytest.raises(RangeError):
        parse_numeral(text)


NOT_NUMERALS = ["", "abc", "苹果", "1.2.3", "12a", "箱"]


@pytest.mark.parametrize("text", NOT_NUMERALS)
def test_parse_numeral_rejects_non_numerals(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - RangeError is a ValueError too; any is fine
        parse_numeral(text)


@pytest.mark.parametrize(
    ("qty", "expected"),
    [("2", "2"), ("2.0", "2"), ("2.50", "2.5"), ("0.5", "0.5"), ("12", "12"), ("100", "100"),
     ("1.5", "1.5")],
)
def test_format_qty(qty: str, expected: str) -> None:
    assert format_qty(Decimal(qty)) == expected


# --- quantities inside a member's order ------------------------------------------------------

def _item(name: str, unit: str) -> list[CatalogItem]:
    return [CatalogItem(deal_id=1, item_no=1, name=name, unit=unit, items_in_deal=1)]


APPLE = _item("山东富士苹果", "箱")
PORK = _item("散养土猪五花肉", "斤")
DURIAN = _item("泰国榴莲", "个")
BUNS = _item("手工奶黄包", "份")
EGGS = _item("土鸡蛋", "个")
EGGS_BY_DOZEN = _item("土鸡蛋", "打")

# (raw member text, catalog, expected quantity of the single line)
QUANTITIES = [
    ("要两箱", APPLE, "2"),
    ("两箱", APPLE, "2"),
    ("十二箱", APPLE, "12"),
    ("要十箱", APPLE, "10"),
    ("我要2箱", APPLE, "2"),
    ("来三箱", APPLE, "3"),
    ("x2", APPLE, "2"),
    ("X3", APPLE, "3"),
    ("×2", APPLE, "2"),
    ("*2", APPLE, "2"),
    ("+2", APPLE, "2"),
    ("２箱", APPLE, "2"),
    ("ｘ２", APPLE, "2"),
    ("兩箱", APPLE, "2"),
    ("要5箱", APPLE, "5"),
    ("要俩", DURIAN, "2"),
    ("来仨", DURIAN, "3"),
    ("要两个", DURIAN, "2"),
    ("要２個", DURIAN, "2"),
    ("两个半", PORK, "2.5"),
    ("要五斤", PORK, "5"),
    ("要2.5斤", PORK, "2.5"),
    ("一斤半", PORK, "1.5"),
    ("要半斤", PORK, "0.5"),
    ("来两斤半", PORK, "2.5"),
    ("三斤半", PORK, "3.5"),
    ("要1.5斤", PORK, "1.5"),
    ("要十斤", PORK, "10"),
    ("十二份", BUNS, "12"),
    ("来一百零五份", BUNS, "105"),
    ("要廿份", BUNS, "20"),
    ("要一打", EGGS, "12"),
    ("来两打", EGGS, "24"),
    ("要一打", EGGS_BY_DOZEN, "1"),
    ("预定一箱", APPLE, "1"),
    ("跟一单", APPLE, "1"),
]


@pytest.mark.parametrize(("raw", "catalog", "expected"), QUANTITIES)
def test_order_quantity(raw: str, catalog: list[CatalogItem], expected: str) -> None:
    intent = parse_member_message(normalize(raw), catalog)
    assert isinstance(intent, OrderIntent), f"{raw!r}: expected an order of {expected}, got {intent!r}"
    assert intent.kind == "order"
    qtys = [ln.qty if ln.qty is not None else Decimal(1) for ln in intent.lines]
    assert qtys == [Decimal(expected)], f"{raw!r}: expected [{expected}], got {qtys}"


# A range must be asked about, never guessed.
AMBIGUOUS_QUANTITIES = [
    ("两三个", DURIAN),
    ("要两三箱", APPLE),
    ("三五斤", PORK),
    ("来个两三份", BUNS),
    ("要个三四盒", BUNS),
    ("五六个吧", DURIAN),
    ("一两斤", PORK),
    ("2-3箱", APPLE),
    ("2到3箱", APPLE),
    ("要2~3斤", PORK),
    ("两到三箱", APPLE),
    ("三或四份", BUNS),
]


@pytest.mark.parametrize(("raw", "catalog"), AMBIGUOUS_QUANTITIES)
def test_range_quantity_is_asked_about(raw: str, catalog: list[CatalogItem]) -> None:
    got = parse_member_message(normalize(raw), catalog)
    assert isinstance(got, Ambiguous), f"{raw!r}: expected Ambiguous (ask), got {got!r}"
