"""Chinese relative and absolute times, resolved against a fixed message time.

The clock is Tuesday 2026-11-24 09:00 in Asia/Shanghai.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from handlers.parsing.text import normalize
from handlers.parsing.times import format_time, parse_time

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=TZ)  # a Tuesday


def at(month: int, day: int, hour: int, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=TZ)


# Expressions with a clock time: (text, expected moment)
WITH_CLOCK = [
    ("明晚8点", at(11, 25, 20)),
    ("明晚八点", at(11, 25, 20)),
    ("明晚8点半", at(11, 25, 20, 30)),
    ("明天晚上8点", at(11, 25, 20)),
    ("明天20:00", at(11, 25, 20)),
    ("明天20点", at(11, 25, 20)),
    ("明天中午12点", at(11, 25, 12)),
    ("明早7点", at(11, 25, 7)),
    ("明天上午10点", at(11, 25, 10)),
    ("明天下午三点一刻", at(11, 25, 15, 15)),
    ("明天凌晨1点", at(11, 25, 1)),
    ("今晚九点半", at(11, 24, 21, 30)),
    ("今晚8点", at(11, 24, 20)),
    ("今天下午5点半", at(11, 24, 17, 30)),
    ("今晚12点", at(11, 25, 0)),  # midnight at the end of today
    ("晚上8点", at(11, 24, 20)),
    ("晚上十点", at(11, 24, 22)),
    ("下午3点", at(11, 24, 15)),
    ("中午12点", at(11, 24, 12)),
    ("10点", at(11, 24, 10)),
    ("20:00", at(11, 24, 20)),
    ("8点", at(11, 24, 20)),  # said at 09:00: 8 o'clock this evening
    ("周六上午10点", at(11, 28, 10)),
    ("周五晚8点", at(11, 27, 20)),
    ("周五20:00", at(11, 27, 20)),
    ("周五晚上八点前", at(11, 27, 20)),
    ("周6晚8点", at(11, 28, 20)),
    ("星期天下午2点", at(11, 29, 14)),
    ("下周一上午9点", at(11, 30, 9)),
    ("后天中午12点", at(11, 26, 12)),
    ("后天晚上7点", at(11, 26, 19)),
    ("11月28日18:00", at(11, 28, 18)),
    ("11月28号晚上7点", at(11, 28, 19)),
    ("11.28 18点", at(11, 28, 18)),
    ("11/28 18:00", at(11, 28, 18)),
    ("11-28 18:00", at(11, 28, 18)),
    ("2026-11-28 18:00", at(11, 28, 18)),
    ("12月1日20点", at(12, 1, 20)),
    ("28号晚8点", at(11, 28, 20)),
    ("截团时间：明晚8点", at(11, 25, 20)),
    ("明晚8点前", at(11, 25, 20)),
    ("明晚8点截止", at(11, 25, 20)),
]


@pytest.mark.parametrize(("text", "expected"), WITH_CLOCK)
def test_parse_time_with_clock(text: str, expected: datetime) -> None:
    got = parse_time(normalize(text), NOW)
    assert got is not None, f"{text!r}: expected {expected}, got None"
    assert got.at == expected, f"{text!r}: expected {expected}, got {got.at}"
    assert got.has_clock


# Relative offsets from the message time.
RELATIVE = [
    ("3小时后", timedelta(hours=3)),
    ("三小时后", timedelta(hours=3)),
    ("两小时后", timedelta(hours=2)),
    ("半小时后", timedelta(minutes=30)),
    ("一个半小时后", timedelta(hours=1, minutes=30)),
    ("30分钟后", timedelta(minutes=30)),
    ("十分钟以后", timedelta(minutes=10)),
    ("2个钟头之后", timedelta(hours=2)),
]


@pytest.mark.parametrize(("text", "delta"), RELATIVE)
def test_parse_time_relative(text: str, delta: timedelta) -> None:
    got = parse_time(normalize(text), NOW)
    assert got is not None, f"{text!r}: expected now+{delta}, got None"
    assert got.at == NOW + delta, f"{text!r}: expected {NOW + delta}, got {got.at}"


# Only a day is written: the day is certain; the time of day is the default (end of day).
DAY_ONLY = [
    ("明天", at(11, 25, 23, 59)),
    ("后天", at(11, 26, 23, 59)),
    ("大后天", at(11, 27, 23, 59)),
    ("周六", at(11, 28, 23, 59)),
    ("星期三", at(11, 25, 23, 59)),
    ("礼拜天", at(11, 29, 23, 59)),
    ("周一", at(11, 30, 23, 59)),  # this week's Monday has passed
    ("本周五", at(11, 27, 23, 59)),
    ("这周六", at(11, 28, 23, 59)),
    ("下周一", at(11, 30, 23, 59)),
    ("下周六", at(12, 5, 23, 59)),
    ("下下周一", at(12, 7, 23, 59)),
    ("月底", at(11, 30, 23, 59)),
    ("月底前", at(11, 30, 23, 59)),
    ("下个月底", at(12, 31, 23, 59)),
    ("11月28日", at(11, 28, 23, 59)),
    ("十一月二十八日", at(11, 28, 23, 59)),
    ("11/28", at(11, 28, 23, 59)),
    ("12月1日", at(12, 1, 23, 59)),
    ("2026年12月1日", at(12, 1, 23, 59)),
    ("25号", at(11, 25, 23, 59)),
    ("1号", at(12, 1, 23, 59)),  # the 1st of this month has passed
]


@pytest.mark.parametrize(("text", "expected"), DAY_ONLY)
def test_parse_time_day_only(text: str, expected: datetime) -> None:
    got = parse_time(normalize(text), NOW)
    assert got is not None, f"{text!r}: expected {expected}, got None"
    assert got.at == expected, f"{text!r}: expected {expected}, got {got.at}"
    assert not got.has_clock


def test_parse_time_day_only_uses_given_default() -> None:
    got = parse_time("周六", NOW, default_hour=9, default_minute=0)
    assert got is not None
    assert got.at == at(11, 28, 9)


# A part of the day without a clock: the day is certain, the hour falls in that part of the day.
PERIODS = [
    ("今晚", at(11, 24, 0), 18, 23),
    ("明天上午", at(11, 25, 0), 6, 12),
    ("周六上午", at(11, 28, 0), 6, 12),
    ("周日晚上", at(11, 29, 0), 18, 23),
    ("明天中午", at(11, 25, 0), 11, 13),
    ("后天下午", at(11, 26, 0), 12, 18),
]


@pytest.mark.parametrize(("text", "day", "earliest", "latest"), PERIODS)
def test_parse_time_part_of_day(text: str, day: datetime, earliest: int, latest: int) -> None:
    got = parse_time(normalize(text), NOW)
    assert got is not None, f"{text!r}: expected a time on {day.date()}, got None"
    assert got.at.date() == day.date(), f"{text!r}: expected {day.date()}, got {got.at}"
    assert earliest <= got.at.hour <= latest, f"{text!r}: hour {got.at.hour} not in {earliest}-{latest}"


# Not (wholly) a time expression: addresses, prices, quantities, words, impossible times.
NOT_TIMES = [
    "2号楼3单元601 两箱",
    "2号楼3单元601",
    "3号楼",
    "7-1201",
    "39.9",
    "39.9元/箱",
    "100",
    "8箱",
    "两箱",
    "2.5斤",
    "苹果",
    "山东富士苹果",
    "你好",
    "随便",
    "看情况",
    "尽快",
    "等通知",
    "明",
    "25点",
    "13:75",
    "2月30日",
    "0小时后",
    "今天明天",
    "周六周日",
    "",
    "   ",
]


@pytest.mark.parametrize("text", NOT_TIMES)
def test_parse_time_rejects(text: str) -> None:
    got = parse_time(normalize(text), NOW)
    assert got is None, f"{text!r}: expected None, got {got}"


@pytest.mark.parametrize(
    ("moment", "with_clock", "expected"),
    [
        (at(11, 25, 20), True, "11月25日(周三) 20:00"),
        (at(11, 28, 9, 30), True, "11月28日(周六) 09:30"),
        (at(11, 29, 0), False, "11月29日(周日)"),
    ],
)
def test_format_time(moment: datetime, with_clock: bool, expected: str) -> None:
    assert format_time(moment, with_clock=with_clock) == expected
