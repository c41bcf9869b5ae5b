"""Chinese and Arabic numerals, and the quantities members write ("两箱", "一斤半", "x2").

Pure functions; the order parser decides which number in a message is a quantity.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

DIGITS: dict[str, int] = {
    "零": 0, "〇": 0, "一": 1, "壹": 1, "幺": 1, "二": 2, "贰": 2, "两": 2, "俩": 2,
    "三": 3, "叁": 3, "仨": 3, "四": 4, "肆": 4, "五": 5, "伍": 5, "六": 6, "陆": 6,
    "七": 7, "柒": 7, "八": 8, "捌": 8, "九": 9, "玖": 9,
}
_SMALL_UNITS: dict[str, int] = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_SPECIAL: dict[str, int] = {"廿": 20, "卅": 30}

CN_NUM_CHARS = "".join(DIGITS) + "".join(_SMALL_UNITS) + "".join(_SPECIAL) + "万"
# A numeral span: Arabic (with decimals) or Chinese characters.
NUMERAL = rf"(?:\d+(?:\.\d+)?|[{CN_NUM_CHARS}]+)"


class RangeError(ValueError):
    """A span such as 两三 or 2-3: a range the member must settle, never guessed."""


def _cn_below_10000(text: str) -> int:
    total = 0
    current: int | None = None
    for ch in text:
        if ch in DIGITS:
            if current is not None and current != 0:
                # Two digits in a row with no unit between them ("两三", "五六").
                raise RangeError(text)
            current = DIGITS[ch]
        elif ch in _SMALL_UNITS:
            total += (1 if current is None else current) * _SMALL_UNITS[ch]
            current = None
        elif ch in _SPECIAL:
            total += _SPECIAL[ch]
            current = None
        else:
            raise ValueError(text)
    if current:
        # "一百五" means 150 and "两千三" 2300: a trailing digit takes the next unit down.
        if len(text) >= 2 and text[-2] in _SMALL_UNITS and text[-2] not in "十拾":
            current *= _SMALL_UNITS[text[-2]] // 10
        total += current
    return total


def parse_numeral(text: str) -> Decimal:
    """Convert one numeral span to a number.

    Args:
        text: "12", "2.5", "十二", "一百零五", "廿三", "两", "两千", "一万二".

    Returns:
        The value as a Decimal.

    Raises:
        RangeError: for a range written as adjacent digits ("两三", "三五").
        ValueError: when the span is not a numeral.
    """
    if not text:
        raise ValueError(text)
    if text[0].isdigit():
        try:
            return Decimal(text)
        except InvalidOperation as exc:
            raise ValueError(text) from exc
    if "万" in text:
        high, _, low = text.partition("万")
        value = (_cn_below_10000(high) if high else 1) * 10000
        if low:
            low_value = _cn_below_10000(low.lstrip("零〇"))
            if not low.startswith(("零", "〇")) and low_value < 10:
                low_value *= 1000  # 一万二 = 12000
            value += low_value
        return Decimal(value)
    return Decimal(_cn_below_10000(text))


def format_qty(qty: Decimal) -> str:
    """Format a quantity without trailing zeros: 2, 2.5, 0.5."""
    text = format(qty.normalize(), "f")
    return text


# Units members write after a number. Longer first so that 公斤 wins over 斤.
UNITS = sorted(
    """公斤 千克 kg 斤 克 g 箱 份 个 盒 袋 串 板 只 瓶 包 件 条 块 桶 罐 提 套 单 组 颗 支 根 把 片
    杯 听 兜 筐 篮 扎 束 盆 张 对 双 打 台 本 枚 粒 头 尾 盘 碗 斤装 卷 捆 筒 蓝 排 株 棵 朵 碟 袋装 人 家
    例 客 位 屉 lb 磅 升 l ml 桌 批 回 次""".split(),
    key=len,
    reverse=True,
)
# The unit alternatives as a regex. An ASCII unit must end its word: "1201 Lisa" is a room
# and a name, not 1201 litres.
UNIT_RE = "|".join(re.escape(u) + (r"(?![A-Za-z])" if u.isascii() else "") for u in UNITS)
