"""Chinese relative and absolute times ("明晚8点", "周六上午10点", "11月28日18:00", "3小时后").

Pure functions of (text, now). The whole text must be a time expression (apart from filler
such as "前" or "截止"), so an address like "2号楼3单元601" or a price like "39.9" is never
mistaken for a date.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from handlers.parsing.numbers import NUMERAL, RangeError, parse_numeral

WEEKDAYS = {"一": 0, "1": 0, "二": 1, "2": 1, "三": 2, "3": 2, "四": 3, "4": 3, "五": 4, "5": 4,
            "六": 5, "6": 5, "日": 6, "天": 6, "七": 6, "7": 6, "末": 5}
WEEKDAY_NAMES = "一二三四五六日"

# Hour offsets and default hours of the parts of a day.
_PERIODS: dict[str, tuple[str, int]] = {
    "凌晨": ("am", 5), "早上": ("am", 8), "早晨": ("am", 8), "清早": ("am", 7), "一早": ("am", 8),
    "上午": ("am", 10), "早": ("am", 8), "中午": ("noon", 12), "午": ("noon", 12),
    "下午": ("pm", 15), "傍晚": ("pm", 18), "晚上": ("pm", 20), "晚间": ("pm", 20),
    "夜里": ("pm", 22), "夜间": ("pm", 22), "半夜": ("night", 0), "晚": ("pm", 20), "夜": ("pm", 22),
}
_PERIOD_RE = "|".join(sorted(_PERIODS, key=len, reverse=True))

_DAY_WORDS = {"今天": 0, "今日": 0, "今儿": 0, "今": 0, "明天": 1, "明日": 1, "明儿": 1, "明": 1,
              "后天": 2, "后日": 2, "大后天": 3}
_DAY_RE = "|".join(sorted(_DAY_WORDS, key=len, reverse=True))

_FILLER = re.compile(r"(截团时间|截单时间|截止时间|截团|截单|截止|结束|时间|为止|之前|以前|前|左右|送达|送到|到货|发货|配送|自提|"
                     r"取货|到|在|于|统一|准时|[\s,，。~～—()（）])+")

_TOKEN = re.compile(
    rf"""
    (?P<rel>(?P<rel_n>{NUMERAL})?(?P<rel_half>个半|半)?个?\s*(?P<rel_unit>小时|钟头|分钟|天)(?:后|以后|之后))
  | (?P<date>(?:(?P<year>\d{{4}})[年./-])?(?P<month>\d{{1,2}}|[一二三四五六七八九十]+)(?:月|\.|/|-)
        (?P<day>\d{{1,2}}|[一二三四五六七八九十廿卅]+)(?:日|号|(?!\d)))
  | (?P<monthend>(?P<nextmonth>下个?)?月底|(?P<nextmonth2>下个?)?月末)
  | (?P<dayword>{_DAY_RE})
  | (?P<week>(?P<week_prefix>下下个?|下个?|本|这个?)?(?:周|星期|礼拜)(?P<wd>[一二三四五六日天七1-7末]))
  | (?P<dom>(?P<dom_n>\d{{1,2}}|[一二三四五六七八九十廿卅]+)(?:号|日)(?!楼|栋|幢|单元|座|门|床|线|店|仓|柜|窗))
  | (?P<clock>(?P<hh>\d{{1,2}}|[零一二两三四五六七八九十]+)\s*(?:[:：](?P<mm>\d{{2}})|(?:点钟?|时)
        (?:(?P<half>半)|(?P<quarter>一刻|三刻)|(?P<mm2>\d{{1,2}}|[零一二三四五六七八九十]+)分?)?))
  | (?P<period>{_PERIOD_RE})
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class ParsedTime:
    """A resolved time. ``has_clock`` is False when only a day was written ("周六送达")."""

    at: datetime
    has_clock: bool


def _num(text: str) -> int:
    return int(parse_numeral(text))


def _apply_period(hour: int, period: str | None) -> int:
    if period is None:
        return hour
    kind = _PERIODS[period][0]
    if kind == "pm" and hour < 12:
        return hour + 12
    if kind == "pm" and hour == 12 and period in ("晚上", "晚", "夜", "夜里", "夜间", "晚间"):
        return 24  # 今晚12点 is midnight, the start of tomorrow
    if kind == "noon" and hour < 6:
        return hour + 12
    if kind == "am" and hour == 12:
        return 0 if period == "凌晨" else 12
    return hour


def parse_time(text: str, now: datetime, *, default_hour: int = 23,
               default_minute: int = 59) -> ParsedTime | None:
    """Resolve a Chinese time expression relative to ``now`` (which must be tz-aware).

    Args:
        text: A normalised expression such as "明晚8点", "周五20:00", "半小时后".
        now: The message time in the configured zone.
        default_hour: Hour used when only a day is given (end of day by default).
        default_minute: Minute used with ``default_hour``.

    Returns:
        The resolved time, or None when the text is not wholly a time expression.
    """
    text = text.strip()
    if not text:
        return None
    pos = 0
    parts: dict[str, re.Match[str]] = {}
    stripped = _FILLER.sub(" ", text).strip().lstrip(":：-").strip()
    if not stripped:
        return None
    while pos < len(stripped):
        if stripped[pos] == " ":
            pos += 1
            continue
        m = _TOKEN.match(stripped, pos)
        if not m or m.end() == pos:
            return None
        kind = m.lastgroup
        for name in ("rel", "date", "monthend", "dayword", "week", "dom", "clock", "period"):
            if m.group(name) is not None:
                kind = name
                break
        if kind in parts:
            return None
        parts[str(kind)] = m
        pos = m.end()
    try:
        return _resolve(parts, now, default_hour, default_minute)
    except (ValueError, RangeError, OverflowError):
        return None


def _resolve(parts: dict[str, re.Match[str]], now: datetime, default_hour: int,
             default_minute: int) -> ParsedTime | None:
    if "rel" in parts:
        if len(parts) > 1:
            return None
        m = parts["rel"]
        amount = float(parse_numeral(m.group("rel_n"))) if m.group("rel_n") else 0.0
        if m.group("rel_half"):
            amount += 0.5
        if amount <= 0:
            return None
        unit = m.group("rel_unit")
        delta = {"小时": timedelta(hours=amount), "钟头": timedelta(hours=amount),
                 "分钟": timedelta(minutes=amount), "天": timedelta(days=amount)}[unit]
        return ParsedTime(now + delta, unit != "天")

    day_sources = [k for k in ("date", "monthend", "dayword", "week", "dom") if k in parts]
    if len(day_sources) > 1:
        return None
    period_word: str | None = None
    if "period" in parts:
        period_word = parts["period"].group("period")
    date = None
    if day_sources:
        kind = day_sources[0]
        m = parts[kind]
        today = now.date()
        if kind == "dayword":
            word = m.group("dayword")
            date = today + timedelta(days=_DAY_WORDS[word])
        elif kind == "week":
            wd = WEEKDAYS[m.group("wd")]
            prefix = m.group("week_prefix") or ""
            monday = today - timedelta(days=today.weekday())
            if prefix.startswith("下下"):
                date = monday + timedelta(days=14 + wd)
            elif prefix.startswith("下"):
                date = monday + timedelta(days=7 + wd)
            elif prefix:
                date = monday + timedelta(days=wd)
            else:
                date = monday + timedelta(days=wd)
                if date < today:
                    date += timedelta(days=7)
        elif kind == "date":
            month, day = _num(m.group("month")), _num(m.group("day"))
            year = int(m.group("year")) if m.group("year") else today.year
            date = today.replace(year=year, month=month, day=day)
            if not m.group("year") and date < today - timedelta(days=31):
                date = date.replace(year=year + 1)
        elif kind == "dom":
            day = _num(m.group("dom_n"))
            date = today.replace(day=day)
            if date < today:
                nxt = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
                date = nxt.replace(day=day)
        elif kind == "monthend":
            base = today
            if m.group("nextmonth") or m.group("nextmonth2"):
                base = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
            date = base.replace(day=calendar.monthrange(base.year, base.month)[1])
        # "今晚", "明早" carry their part of the day in the word itself.
    if "dayword" in parts and period_word is None:
        word = parts["dayword"].group("dayword")
        if word in ("今", "明"):
            return None  # "明" alone is not a day; "明晚" is split into 明 + 晚 below
    hour: int
    minute = 0
    has_clock = "clock" in parts
    if has_clock:
        m = parts["clock"]
        hour = _num(m.group("hh"))
        if m.group("mm"):
            minute = int(m.group("mm"))
        elif m.group("mm2"):
            minute = _num(m.group("mm2"))
        elif m.group("half"):
            minute = 30
        elif m.group("quarter"):
            minute = 15 if m.group("quarter") == "一刻" else 45
        hour = _apply_period(hour, period_word)
        if not (0 <= hour <= 24 and 0 <= minute < 60):
            return None
    elif period_word is not None:
        hour = _PERIODS[period_word][1]
    elif date is not None:
        hour, minute = default_hour, default_minute
    else:
        return None

    extra_day = 0
    if hour == 24:
        hour, extra_day = 0, 1
    if date is None:
        candidate = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        candidate += timedelta(days=extra_day)
        if candidate <= now and has_clock and period_word is None and hour < 12:
            later = candidate + timedelta(hours=12)
            if later > now:
                return ParsedTime(later, True)
        if candidate <= now:
            candidate += timedelta(days=1)
        return ParsedTime(candidate, has_clock)
    at = now.replace(year=date.year, month=date.month, day=date.day, hour=hour, minute=minute,
                     second=0, microsecond=0) + timedelta(days=extra_day)
    return ParsedTime(at, has_clock or period_word is not None)


def format_time(at: datetime, *, with_clock: bool = True) -> str:
    """Echo a resolved time the way a leader reads it: "11月25日(周三) 20:00"."""
    text = f"{at.month}月{at.day}日(周{WEEKDAY_NAMES[at.weekday()]})"
    return f"{text} {at:%H:%M}" if with_clock else text
