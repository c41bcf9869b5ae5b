"""The 开团 command in every form of SPEC §2, with variations and errors.

The message time is Tuesday 2026-11-24 09:00 Asia/Shanghai.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from handlers.parsing.deal import DealParseError, DealSpec, is_open_command, parse_deal_command
from handlers.parsing.text import in_written_script, normalize

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=TZ)


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


def D(value: str | int | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _items(spec: DealSpec) -> list[tuple[int, str, Decimal | None, str | None, Decimal | None]]:
    return [(it.no, it.name, it.price, it.unit, it.stock) for it in spec.items]


def _check(raw: str, expected: dict[str, Any]) -> None:
    spec = parse_deal_command(normalize(raw), NOW)
    problems: list[str] = []
    for key, want in expected.items():
        if key == "items":
            got: Any = _items(spec)
            want = [(no, name, D(price), unit, D(stock)) for no, name, price, unit, stock in want]
        elif key == "deadline":
            got = spec.deadline.at if spec.deadline else None
        elif key == "delivery_date":
            got = spec.delivery.at.date() if spec.delivery else None
        elif key in ("threshold", "stock", "limit_per_member"):
            got = getattr(spec, key)
            want = D(want)
        else:
            got = getattr(spec, key)
        if got != want:
            problems.append(f"{key}: expected {want!r}, got {got!r}")
    assert not problems, f"{raw!r}: " + "; ".join(problems)


# --- the three forms of SPEC §2 ---------------------------------------------------------------

SPEC_ONE_LINE = (
    "开团 山东富士苹果 39.9元/箱 20箱成团 限量100箱 每人限购5箱 明晚8点截团 周六送达 3号楼门口自提"
)
SPEC_KEY_VALUE = """#开团 山东富士苹果
价格：39.9元/箱
成团：20箱
限量：100箱
限购：5箱
截团：明天20:00
送达：周六上午
自提：3号楼门口"""
SPEC_NUMBERED = """#开团 周末水果团
1. 富士苹果 39.9元/箱
2. 赣南脐橙 29.9元/箱 限量30箱
3. 阳光玫瑰 25元/串
截团：周五20:00"""

FULL_APPLE = {
    "title": "山东富士苹果",
    "items": [(1, "山东富士苹果", "39.9", "箱", None)],
    "threshold": 20,
    "threshold_unit": "箱",
    "stock": 100,
    "limit_per_member": 5,
    "deadline": at(11, 25, 20),
    "delivery_date": date(2026, 11, 28),
    "pickup": "3号楼门口",
}

DEALS = [
    pytest.param("开团 砀山酥梨 6.8一斤 今晚九点半截团 10号楼下自提", {
        "title": "砀山酥梨", "items": [(1, "砀山酥梨", "6.8", "斤", None)]}, id="price-without-yuan"),
    pytest.param("开团 土鸡蛋 45每板 明晚8点截团", {
        "items": [(1, "土鸡蛋", "45", "板", None)]}, id="price-per-unit-without-yuan"),
    pytest.param(SPEC_ONE_LINE, FULL_APPLE, id="spec-one-line"),
    pytest.param(SPEC_KEY_VALUE, FULL_APPLE, id="spec-key-value"),
    pytest.param(SPEC_NUMBERED, {
        "title": "周末水果团",
        "items": [(1, "富士苹果", "39.9", "箱", None),
                  (2, "赣南脐橙", "29.9", "箱", 30),
                  (3, "阳光玫瑰", "25", "串", None)],
        "deadline": at(11, 27, 20),
        "threshold": None,
        "stock": None,
    }, id="spec-numbered"),
    # --- one-line variations (the transcripts' deals and more) ---
    pytest.param("开团 赣南脐橙 29.9元/箱 5箱成团 今晚8点截团", {
        "title": "赣南脐橙", "items": [(1, "赣南脐橙", "29.9", "箱", None)],
        "threshold": 5, "threshold_unit": "箱", "deadline": at(11, 24, 20)}, id="today-evening"),
    pytest.param("开团 东北五常大米 89元/袋 10袋成团 明天中午12点截团", {
        "title": "东北五常大米", "items": [(1, "东北五常大米", "89", "袋", None)],
        "threshold": 10, "deadline": at(11, 25, 12)}, id="noon"),
    pytest.param("开团 海南金钻凤梨 19.9元/个 明晚9点截团", {
        "title": "海南金钻凤梨", "items": [(1, "海南金钻凤梨", "19.9", "个", None)],
        "threshold": None, "stock": None, "limit_per_member": None,
        "deadline": at(11, 25, 21)}, id="no-threshold"),
    pytest.param("开团 散养土猪五花肉 32元/斤 明晚8点截团", {
        "items": [(1, "散养土猪五花肉", "32", "斤", None)], "deadline": at(11, 25, 20)}, id="per-jin"),
    pytest.param("开团 阳澄湖大闸蟹 128元/盒 限量10盒 每人限购3盒 今晚8点截团", {
        "title": "阳澄湖大闸蟹", "items": [(1, "阳澄湖大闸蟹", "128", "盒", None)],
        "stock": 10, "limit_per_member": 3, "deadline": at(11, 24, 20)}, id="stock-and-limit"),
    pytest.param("【开团】丹东草莓 49元/盒 明晚8点截团", {
        "title": "丹东草莓", "items": [(1, "丹东草莓", "49", "盒", None)],
        "deadline": at(11, 25, 20)}, id="bracketed"),
    pytest.param("开团：丹东草莓 49元/盒", {
        "title": "丹东草莓", "items": [(1, "丹东草莓", "49", "盒", None)], "deadline": None},
        id="colon-after-keyword"),
    pytest.param("开团 丹东草莓", {
        "title": "丹东草莓", "items": [(1, "丹东草莓", None, None, None)], "deadline": None},
        id="title-only"),
    pytest.param("开团 山东富士苹果 明晚8点截团", {
        "title": "山东富士苹果", "items": [(1, "山东富士苹果", None, None, None)],
        "deadline": at(11, 25, 20)}, id="no-price"),
    pytest.param("开团 山东富士苹果 ¥39.9/箱 明晚8点截团", {
        "title": "山东富士苹果", "items": [(1, "山东富士苹果", "39.9", "箱", None)]}, id="yen-sign"),
    pytest.param("开团 山东富士苹果 39.9块一箱 明晚8点截团", {
        "title": "山东富士苹果", "items": [(1, "山东富士苹果", "39.9", "箱", None)]}, id="kuai-yi-xiang"),
    pytest.param("开团 库尔勒香梨 45元/箱 10人成团 明晚8点截团", {
        "items": [(1, "库尔勒香梨", "45", "箱", None)],
        "threshold": 10, "threshold_unit": "人"}, id="threshold-people"),
    pytest.param("开团 烟台大樱桃 99元/盒 今晚九点半截团", {
        "title": "烟台大樱桃", "deadline": at(11, 24, 21, 30)}, id="jiu-dian-ban"),
    pytest.param("开团 烟台大樱桃 99元/盒 周六上午10点截团", {
        "title": "烟台大樱桃", "deadline": at(11, 28, 10)}, id="saturday-10"),
    pytest.param("开团 烟台大樱桃 99元/盒 11月28日18:00截团", {
        "title": "烟台大樱桃", "deadline": at(11, 28, 18)}, id="date-and-clock"),
    pytest.param("开团 烟台大樱桃 99元/盒 3小时后截团", {
        "title": "烟台大樱桃", "deadline": at(11, 24, 12)}, id="relative"),
    pytest.param("开团 烟台大樱桃 99元/盒 明晚 8点截团", {
        "title": "烟台大樱桃", "deadline": at(11, 25, 20)}, id="time-split-by-space"),
    pytest.param("开团 烟台大樱桃 99元/盒 截团：明晚8点", {
        "title": "烟台大樱桃", "deadline": at(11, 25, 20)}, id="keyword-first"),
    pytest.param("开团 烟台大樱桃 99元/盒 截团时间：明晚8点", {
        "title": "烟台大樱桃", "deadline": at(11, 25, 20)}, id="keyword-with-shijian"),
    pytest.param("开团 新疆阿克苏苹果 59元/箱 10箱成团 明晚8点截团", {
        "title": "新疆阿克苏苹果", "threshold": 10, "deadline": at(11, 25, 20)}, id="transcript-10"),
    pytest.param("开团 土鸡蛋 30元/板 明晚8点截团", {
        "items": [(1, "土鸡蛋", "30", "板", None)]}, id="per-tray"),
    pytest.param("开团 巴旦木 25元/袋 每人限购3袋 周五晚8点截单", {
        "title": "巴旦木", "limit_per_member": 3, "deadline": at(11, 27, 20)}, id="jie-dan"),
    pytest.param("開團 山東富士蘋果 39.9元／箱 明晚８點截團", {
        "title": "山东富士苹果", "items": [(1, "山东富士苹果", "39.9", "箱", None)],
        "deadline": at(11, 25, 20)}, id="traditional-fullwidth"),
    # --- key：value variations ---
    pytest.param(
        "#开团 舟山带鱼\n价格：68元/袋\n成团：8袋\n限购：4袋\n截团：明天20:00\n"
        "送达：周六上午\n自提：南门驿站", {
        "title": "舟山带鱼", "items": [(1, "舟山带鱼", "68", "袋", None)],
        "threshold": 8, "limit_per_member": 4, "deadline": at(11, 25, 20),
        "delivery_date": date(2026, 11, 28), "pickup": "南门驿站"}, id="kv-transcript-13"),
    pytest.param("#开团\n商品：山东富士苹果\n价格：39.9元/箱\n截团：明晚8点", {
        "title": "山东富士苹果", "items": [(1, "山东富士苹果", "39.9", "箱", None)],
        "deadline": at(11, 25, 20)}, id="kv-title-line"),
    pytest.param("#开团 库尔勒香梨\n价格: 45元/箱\n成团: 10人\n截单: 11月28日18:00", {
        "title": "库尔勒香梨", "items": [(1, "库尔勒香梨", "45", "箱", None)],
        "threshold": 10, "threshold_unit": "人", "deadline": at(11, 28, 18)}, id="kv-ascii-colon"),
    pytest.param("#开团 赣南脐橙\n单价：29.9元/箱\n库存：50箱\n截止时间：周五晚8点\n取货地点：2号门岗亭", {
        "title": "赣南脐橙", "items": [(1, "赣南脐橙", "29.9", "箱", None)], "stock": 50,
        "deadline": at(11, 27, 20), "pickup": "2号门岗亭"}, id="kv-synonyms"),
    # --- numbered list variations ---
    pytest.param("#开团 早餐团\n1、鲜肉包 12元/袋\n2、豆沙包 10元/袋\n3、手工馒头 8元/袋\n截团：明早7点", {
        "title": "早餐团",
        "items": [(1, "鲜肉包", "12", "袋", None), (2, "豆沙包", "10", "袋", None),
                  (3, "手工馒头", "8", "袋", None)],
        "deadline": at(11, 25, 7)}, id="numbered-dunhao"),
    pytest.param(
        "#开团 海鲜团\n1. 舟山带鱼 68元/袋 库存20\n2. 阿根廷红虾 128元/盒 限量10盒\n"
        "成团：10袋\n自提：南门驿站", {
        "title": "海鲜团",
        "items": [(1, "舟山带鱼", "68", "袋", 20), (2, "阿根廷红虾", "128", "盒", 10)],
        "threshold": 10, "threshold_unit": "袋", "pickup": "南门驿站"}, id="numbered-stock"),
    pytest.param("#开团 周末水果团\n1) 富士苹果 39.9元/箱\n2) 赣南脐橙 29.9元/箱\n截团：周五20:00", {
        "title": "周末水果团",
        "items": [(1, "富士苹果", "39.9", "箱", None), (2, "赣南脐橙", "29.9", "箱", None)],
        "deadline": at(11, 27, 20)}, id="numbered-paren"),
]


@pytest.mark.parametrize(("raw", "expected"), DEALS)
def test_parse_deal_command(raw: str, expected: dict[str, Any]) -> None:
    _check(raw, expected)


# --- errors: the reply must say what is missing ------------------------------------------------

ERRORS = [
    pytest.param("开团", id="nothing"),
    pytest.param("#开团", id="hash-nothing"),
    pytest.param("开团 39.9元/箱 明晚8点截团", id="price-no-product"),
    pytest.param("#开团\n价格：39.9元/箱\n截团：明晚8点", id="kv-no-product"),
    pytest.param("开团 山东富士苹果 39.9元/箱 截团时间：看情况", id="deadline-words"),
    pytest.param("#开团 山东富士苹果\n价格：39.9元/箱\n截团：等通知", id="kv-deadline-words"),
    pytest.param("#开团 山东富士苹果\n截团：下下下周八", id="kv-deadline-garbage"),
    pytest.param("#开团 山东富士苹果\n截团：13月45日", id="kv-impossible-date"),
    pytest.param("#开团 山东富士苹果\n成团：很多", id="kv-threshold-no-number"),
]


@pytest.mark.parametrize("raw", ERRORS)
def test_parse_deal_command_errors(raw: str) -> None:
    with pytest.raises(DealParseError) as info:
        parse_deal_command(normalize(raw), NOW)
    assert info.value.problem


# --- is_open_command --------------------------------------------------------------------------

OPEN_COMMANDS = [
    ("开团 山东富士苹果 39.9元/箱", True),
    ("#开团 周末水果团", True),
    ("＃开团 周末水果团", True),
    ("【开团】丹东草莓 49元/盒", True),
    ("开团：丹东草莓", True),
    ("開團 山東富士蘋果", True),
    ("开团了吗？", False),
    ("开团了吗", False),
    ("什么时候开团", False),
    ("明天开团吗", False),
    ("下次开团叫我", False),
    ("团长什么时候再开团呀", False),
    ("跟一单", False),
]


@pytest.mark.parametrize(("raw", "expected"), OPEN_COMMANDS)
def test_is_open_command(raw: str, expected: bool) -> None:
    assert is_open_command(normalize(raw)) is expected, raw


@pytest.mark.parametrize(("piece", "raw", "expected"), [
    ("台湾凤梨酥", "開團 台灣鳳梨酥 88元/盒 明晚8點截團", "台灣鳳梨酥"),
    ("8栋门口", "開團 蘋果 8棟門口自提", "8棟門口"),
    ("山东苹果", "开团 山东苹果 39.9元/箱", "山东苹果"),  # simplified stays simplified
])
def test_names_are_shown_in_the_script_they_were_written_in(piece: str, raw: str, expected: str) -> None:
    assert in_written_script(piece, raw) == expected
