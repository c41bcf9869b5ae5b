"""The 开团 command in its three forms (one line, key：value lines, numbered item list)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from handlers.parsing.numbers import NUMERAL, UNIT_RE, RangeError, parse_numeral
from handlers.parsing.times import ParsedTime, parse_time

_UNIT_RE = UNIT_RE
OPEN_RE = re.compile(r"^(?:@[^\s@]{1,32}\s+)*[#＃【\[]?[ \t]*(?:开团|新团|开个团)(?:啦|了|喽|咯)?[ \t]*[】\]]?[ \t]*[:：!！]?[ \t]*")
_PRICE_RE = re.compile(
    rf"[¥￥]?\s*(?P<price>\d+(?:\.\d+)?)\s*(?:元|块钱|块|rmb|¥)\s*(?:(?:/|每|一)\s*(?P<unit>{_UNIT_RE}))?"
    rf"|[¥￥]\s*(?P<price2>\d+(?:\.\d+)?)\s*(?:/\s*(?P<unit2>{_UNIT_RE}))?"
    rf"|(?<![\d.])(?P<price3>\d+(?:\.\d+)?)\s*(?:/|一|每)\s*(?P<unit3>{_UNIT_RE})",  # 89/斤, 6.8一斤
    re.IGNORECASE,
)
_QTY_RE = re.compile(rf"(?P<n>{NUMERAL})\s*(?P<unit>{_UNIT_RE})?", re.IGNORECASE)

# "key：value" lines of the multi-line form, by field.
_FIELDS: list[tuple[str, str]] = [
    ("price", r"价格|单价|售价|团购价|价钱|团购价格"),
    ("threshold", r"成团(?:数量|条件|人数|目标)?|起团"),
    ("stock", r"限量|库存|总量|总数|数量"),
    ("limit", r"(?:每人)?限购"),
    ("deadline", r"(?:截团|截单|截止|结束)(?:时间|日期)?"),
    ("delivery", r"(?:送达|到货|发货|配送|送货)(?:时间|日期)?"),
    ("pickup", r"(?:自提|取货|提货)(?:点|地点|地址|位置|点位)?|地点|地址"),
    ("title", r"商品|名称|品名|产品|商品名称"),
]
_FIELD_LINE = re.compile(
    r"^(?:" + "|".join(f"(?P<{name}>{rx})" for name, rx in _FIELDS) + r")\s*[:：]\s*(?P<value>.*)$"
)
_ITEM_LINE = re.compile(r"^(?P<no>\d{1,2})\s*[.、)）:：]\s*(?P<rest>.+)$")
_KEYWORDS = {
    "threshold": re.compile(r"成团"),
    "stock": re.compile(r"限量|库存"),
    "limit": re.compile(r"限购"),
    "deadline": re.compile(r"(?:截团|截单|截止)(?:时间)?[:：]?"),
    "delivery": re.compile(r"送达|到货|发货|配送|送货"),
    "pickup": re.compile(r"自提|取货|提货"),
}


class DealParseError(ValueError):
    """A 开团 command that cannot be understood; the message says what is missing."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class ItemSpec:
    """One item of a deal as the leader wrote it."""

    no: int
    name: str
    price: Decimal | None
    unit: str | None
    stock: Decimal | None = None


@dataclass(frozen=True)
class DealSpec:
    """A parsed 开团 command, its times resolved against the message time."""

    title: str
    items: tuple[ItemSpec, ...]
    threshold: Decimal | None = None
    threshold_unit: str | None = None
    stock: Decimal | None = None
    limit_per_member: Decimal | None = None
    deadline: ParsedTime | None = None
    delivery_text: str | None = None
    delivery: ParsedTime | None = None
    pickup: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def is_open_command(text: str) -> bool:
    """Whether a normalised message is a 开团 command (any form)."""
    return bool(OPEN_RE.match(text)) and not text.rstrip().endswith(("?", "吗"))


def _amount(text: str) -> tuple[Decimal, str | None] | None:
    m = _QTY_RE.search(text)
    if not m:
        return None
    try:
        value = parse_numeral(m.group("n"))
    except (ValueError, RangeError):
        return None
    return value, m.group("unit")


def _split_price(text: str) -> tuple[str, Decimal | None, str | None, str]:
    """Split "山东富士苹果 39.9元/箱 限量30箱" into name, price, unit and the rest."""
    m = _PRICE_RE.search(text)
    if not m:
        return text.strip(), None, None, ""
    price = Decimal(m.group("price") or m.group("price2") or m.group("price3"))
    unit = m.group("unit") or m.group("unit2") or m.group("unit3")
    return text[: m.start()].strip(), price, unit, text[m.end():].strip()


def parse_deal_command(text: str, now: datetime) -> DealSpec:
    """Parse a normalised 开团 command.

    Args:
        text: The normalised message, starting with 开团 or #开团.
        now: The message time (tz-aware) that relative deadlines are resolved against.

    Returns:
        The deal specification.

    Raises:
        DealParseError: when the product is missing or a time cannot be read.
    """
    m = OPEN_RE.match(text)
    body = text[m.end():] if m else text
    lines = [line.strip() for line in body.split("\n")]
    first, rest = lines[0], [line for line in lines[1:] if line]
    raw: dict[str, str] = {}
    items: list[ItemSpec] = []
    notes: list[str] = []

    title, price, unit, tail = _split_price(first)
    tokens = [t for t in re.split(r"[\s,，;；]+", (title + " " + tail) if price is not None else title) if t]
    title_tokens: list[str] = []
    pending: list[str] = []
    seen_price = price is not None
    for token in tokens:
        kind = next((k for k, rx in _KEYWORDS.items() if rx.search(token)), None)
        if kind is None:
            if not seen_price and not raw:
                title_tokens.append(token)
            else:
                pending.append(token)
            continue
        value = token
        if kind in ("deadline", "delivery") and pending:
            # "明晚 8点截团": a time split by a space belongs to the keyword after it.
            merged = pending[-1] + " " + _KEYWORDS[kind].sub("", token).strip(":： ")
            if parse_time(merged, now) is not None:
                value = pending[-1] + " " + token
        raw[kind] = value
        pending = []
    if len(title_tokens) > 1 and price is None:
        # "开团 山东富士苹果 明晚8点截团": later bare tokens may be a time or a note.
        title_tokens, notes = title_tokens[:1], title_tokens[1:]
    title = " ".join(title_tokens) if price is None else title.strip()
    if price is not None:
        title = " ".join(t for t in re.split(r"\s+", title) if not any(
            rx.search(t) for rx in _KEYWORDS.values())) or title

    for line in rest:
        fm = _FIELD_LINE.match(line)
        if fm:
            raw[next(name for name, _ in _FIELDS if fm.group(name))] = fm.group("value").strip()
            continue
        im = _ITEM_LINE.match(line)
        if im:
            name, iprice, iunit, itail = _split_price(im.group("rest"))
            stock = None
            sm = re.search(r"(?:限量|库存|仅|共)\s*[:：]?\s*(" + NUMERAL + ")", itail)
            if sm:
                stock = parse_numeral(sm.group(1))
            name = re.sub(r"\s*(?:限量|库存).*$", "", name).strip()
            items.append(ItemSpec(int(im.group("no")), name, iprice, iunit, stock))
            continue
        notes.append(line)

    if "price" in raw:
        _pname, price, unit, _ = _split_price(raw["price"])
        if price is None:
            amt = _amount(raw["price"])
            if amt:
                price = amt[0]
    if "title" in raw and not title:
        title = raw["title"]
    title = title.strip(" :：-,，;；。")
    if not title and not items:
        raise DealParseError("没看懂要开什么团：请写上商品名")

    def amount_of(key: str) -> tuple[Decimal | None, str | None]:
        if key not in raw:
            return None, None
        amt = _amount(_KEYWORDS.get(key, re.compile("$^")).sub("", raw[key]))
        if amt is None:
            raise DealParseError(f"「{raw[key]}」里没有看懂数量")
        return amt

    threshold, threshold_unit = amount_of("threshold")
    stock, stock_unit = amount_of("stock")
    limit, limit_unit = amount_of("limit")
    if not items:
        unit = unit or threshold_unit if threshold_unit not in ("人", "单") else unit
        unit = unit or stock_unit or limit_unit
        items = [ItemSpec(1, title, price, unit, None)]
    first_unit = items[0].unit
    if threshold is not None and threshold_unit is None:
        threshold_unit = first_unit

    deadline = None
    if "deadline" in raw:
        dtext = _KEYWORDS["deadline"].sub("", raw["deadline"]).strip(" :：")
        deadline = parse_time(dtext, now)
        if deadline is None:
            raise DealParseError(f"截团时间「{dtext}」没看懂")
    delivery_text = delivery = None
    if "delivery" in raw:
        delivery_text = _KEYWORDS["delivery"].sub("", raw["delivery"]).strip(" :：") or None
        if delivery_text:
            delivery = parse_time(delivery_text, now, default_hour=9, default_minute=0)
    pickup = None
    if "pickup" in raw:
        pickup = _KEYWORDS["pickup"].sub("", raw["pickup"]).strip(" :：") or None
        if pickup and pickup.endswith(("点", "地点")) and len(pickup) <= 2:
            pickup = None
    return DealSpec(
        title=title or items[0].name,
        items=tuple(items),
        threshold=threshold,
        threshold_unit=threshold_unit,
        stock=stock,
        limit_per_member=limit,
        deadline=deadline,
        delivery_text=delivery_text,
        delivery=delivery,
        pickup=pickup,
        notes=tuple(notes),
    )
