"""Member messages: orders, changes, cancels, status queries, and everything that is not one.

Precision beats recall: a clause becomes an order only with a clear order verb or a bare
quantity whose leftover words read like a note (a name, a building, "放门卫"). Questions,
chatter, past purchases and numbers that are addresses or times record nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from handlers.parsing.numbers import NUMERAL, UNIT_RE, RangeError, parse_numeral
from handlers.parsing.wechat import strip_mentions

# "单元" is part of an address and "单号" an order number; "一单" is one order.
_UNIT_RE = UNIT_RE.replace("|单|", "|") + r"|单(?![元号])"


@dataclass(frozen=True)
class CatalogItem:
    """An item that a member may order right now: what the parser matches names against."""

    deal_id: int
    item_no: int
    name: str
    unit: str | None
    items_in_deal: int


@dataclass(frozen=True)
class OrderLine:
    """One requested line. ``item`` None means "the deal's only item, or ask which"."""

    item: CatalogItem | None
    qty: Decimal | None  # None: no number written (1 for orders, all for cancels)
    item_no: int | None = None  # "1号两份": the item by its number in a multi-item deal


Kind = Literal["order", "set", "sub", "cancel"]


@dataclass(frozen=True)
class OrderIntent:
    """What a member asked for in one message."""

    kind: Kind
    lines: tuple[OrderLine, ...]
    deal_no: int | None = None
    all_items: bool = False
    note: str | None = None
    placed_for: str | None = None
    more: bool = False  # "再加两个": more of what the member already has
    explicit: bool = False  # an order verb was written (a leader's bare "8斤" is no order)


@dataclass(frozen=True)
class Ambiguous:
    """An order whose quantity is a range (两三个): ask, never guess."""

    text: str


@dataclass(frozen=True)
class StatusQuery:
    """我的订单 (mine) or 进度 (progress)."""

    kind: Literal["mine", "progress"]
    deal_no: int | None = None


# --- vocabulary -------------------------------------------------------------------------

_MINE = re.compile(r"(我的(订单|单子|单|团购)|查单|查订单|查一下我|查下我|我都?(买|订|定|要|下|拍)了?些?(啥|什么|哪些|多少|几)|我的购买)")
_STATUS_NOT = re.compile(r"(取消|撤|不要|删)")
_PROGRESS = re.compile(r"(进度|还差(几|多少)|差(几|多少)|成团了(吗|没)|成团没|够了(吗|没)|"
                       r"(接|订|卖)了多少|现在多少|几(箱|份|个|单)了|多少(箱|份|单)了|"
                       r"(几|多少)(个)?人了|几个了)")
_QUESTION_END = re.compile(r"(\?|吗|么|呢|不|没|没有|嘛|啥)\s*[!。.~]*$")
_QUESTION_WORD = re.compile(
    r"(吗|几|多少|什么|啥|谁|怎么|怎样|为什么|为啥|是否|能否|可否|有没有|是不是|能不能|可不可以|"
    r"要不要|会不会|是.{1,12}还是|哪|请问|咨询|(.)不\2)"
)
_NOISE = re.compile(r"(同问|同求|同想|我也想(知道|问)|想问|问一下|问下|上次|上回|之前|以前|买过|吃过|"
                    r"拼单|团长说|楼上说|说得对|赞同|同意|附议|就是\s*[\d一两二三四五六七八九十])")  # "跟一单就是1斤" explains
_CANCEL_WORD = (r"(?:取消订单|取消|撤一下单|撤下单|撤个单|撤一下|撤单|撤回|撤了|撤掉|撤销|撤|退单|退出|"
                r"不要了|不要啦|不要|不跟了|不跟|不买了|不买|不订了|不定了|删了|删除|删掉)")
_POLITE = r"不好意思|抱歉|sorry|对不起|麻烦了|辛苦了|谢谢|团长"
_CANCEL = re.compile(
    r"^(?:那|我|就|先|还是|算了|啊|哦|嗯|呃|唉|要不|全部|全都|都|帮我|麻烦|" + _POLITE + r")*"
    + _CANCEL_WORD + r"+"
    r"(?:订单|吧|了|啦|哈|哦|呀|" + _POLITE + r")*$"
)
# "那天有事 不要了": a reason, then the cancel. Not when someone else is the subject.
_CANCEL_TAIL = re.compile(r"(?:不要了|不要啦|不买了|不跟了|不订了|不定了|取消了|取消吧|撤单|撤了吧)"
                          r"(?:吧|了|啦|哈|哦|呀|" + _POLITE + r")*$")
_SOMEONE_ELSE = re.compile(r"他|她|别人|人家|大家|有人|楼上|谁")
_MY_ORDER_WORDS = re.compile(r"(?:我的|我那|我这|这|那)(?:订单|单子|一单|单|一份|份)|订单|单子")
_CHANGE_HINT = re.compile(r"^(?:我|那|哦|啊|不好意思)?(?:改|修改|更改|更正|改动|打错了|写错了|说错了|搞错了|发错了|"
                          r"错了|不对|不是|哦不|噢不|喔不|啊不|不不)(?:一下|下)?(?:吧|哈|啊|哦)?$")
# A correction inside one message ("我要3箱 不对 2箱"): it ends a clause of its own.
_CORRECTION = re.compile(r"(?<=\S)\s*(?:不对|哦不|噢不|喔不|说错了|打错了|写错了|搞错了)[,，。!！]?\s*(?=\S)")
_SET = re.compile(r"(?:改成|改为|改到|换成|修改为|改|变成|调成|调整为|更正为|更改为|打错了|写错了|说错了)")
_SUB = re.compile(r"(?:减掉|减去|减少|减|少要|少订|少来|去掉|扣掉)")
_ADD = re.compile(r"(?:再加|追加|加|再来|再要|再订|多要|多来)")
_MORE = re.compile(r"(?:再加|追加|再来|再要|再订|多要|多来)")
# Verbs that make a clause an order when they stand before a quantity, an item or the end.
_TRIGGER = re.compile(
    r"(跟一单|跟单|跟团|跟上|接龙|报名|下单|拍一单|来一单|算我|加我|预定|预订|订|定|买|要|来|拿|带|留|加|抢|占|"
    r"蹲|整|给我|帮我|我也要|也要|上车|\+\s*1(?!\d)|跟(?!你|他|她|着|我说|团长))"
)
_STRONG_ALONE = re.compile(
    r"^(?:那|我|我们|我家|就|也|还|先|那我|再|好的|好|嗯|ok)*"
    r"(?:跟一单|跟单|跟团|跟上|跟|接龙|报名|下单|上车|要|我要|也要|我也要|算我一个|算我一份|算我|加我|加我一个|"
    r"\+1)(?:一个|一份|一单)?(?:吧|哈|了|呀|啊|哦|谢谢|谢谢团长)*$"
)
_NOT_AFTER_YAO = re.compile(r"要(?=不|是|问|看|等|去|说|求|退|换|到|过|吃|做|开|走|给你|多久|几|么|怎)")
_NOT_AFTER_LAI = re.compile(r"来(?=了|过|的|看|说|问|吗|自)")
_PAST = re.compile(r"(买了|订了|定了|要了|拿了|收了|到了|吃了|(?:买|订|定|要|拿|跟)的(?!话))"
                   r"(?!\s*(?:" + NUMERAL + r")?\s*(?:吧|哈))")
_ADDRESS = re.compile(
    rf"(?:{NUMERAL})\s*(?:号楼|栋|幢|单元|楼|层|室|座|期|区|号院|号门|号房|门)"
    r"|\d+(?:-\d+)+|(?<![\d.])\d{3,}(?![\d.])(?!\s*(?:" + _UNIT_RE + r"))"
)
_PRICE = re.compile(
    r"\d+(?:\.\d+)?\s*(?:元|块钱|rmb)(?:\s*/\s*\S)?|\d+\.\d+\s*块|\d+\s*块\s*/\s*\S"
    # "68一只", "6.8一斤": a price for one unit, not an order of one
    rf"|(?<![\d.])\d+(?:\.\d+)?(?:一|每)(?:{_UNIT_RE})"
    # "5斤装", "500克装": a pack size
    rf"|(?:{NUMERAL})\s*(?:{_UNIT_RE})\s*装"
)
_TIME_SPAN = re.compile(
    rf"(?:{NUMERAL})\s*(?:点|时|:\d{{2}}|月|分钟|小时|天|周)|(?:{NUMERAL})(?:号|日)(?=\s*(?:到|送|前|后|截|之))"
)
_BEHALF = re.compile(
    r"(?:帮|替|代|给)\s*(?P<who>[^\s帮替代给你他她,，。也都撤删退]{1,6}?)\s*(?:也|都)?\s*(?:订|定|带|买|留|拿|要|下单|预定|预订|报|抢|来)"
)
_NOT_SOMEONE_ELSE = {"我", "忙", "我们", "我家", "自己", "大家", "我自己"}
_DEAL_REF = re.compile(r"#\s*(\d+)|(\d+)\s*号团|第\s*(\d+)\s*个?团")
_ITEM_NO = re.compile(r"(?:第\s*(?P<a>\d+|[一二三四五六七八九十])\s*(?:个|款|种|样|号)?|(?P<b>\d+|[一二三四五六七八九十])\s*号(?!楼|栋|幢|单元|院|门|房|线|床|店|口|到|送))")
_QTY = re.compile(
    rf"(?:[x×*]\s*(?P<x>{NUMERAL}))"
    rf"|(?:\+\s*(?P<plus>\d+|[一二两三四五六七八九十]))"
    rf"|(?:(?P<n>{NUMERAL}|半)\s*(?P<half1>个半)?\s*(?P<unit>{_UNIT_RE})(?P<half2>半)?)"
    # "水饺2 馄饨1": a bare number right after an item name (masked as \x01).
    # "俩", "仨" on their own: two, three
    r"|(?:^|(?<=\s))(?P<bare>俩|仨)(?=$|\s|吧|哈|呀|啊|谢谢)"
    rf"|(?<=\x01)\s*(?P<after_item>\d+(?:\.\d+)?|[一两二三四五六七八九十俩仨]+)(?![\d.号楼栋点])(?!\s*(?:{_UNIT_RE}))"
)
_RANGE = re.compile(rf"(?:{NUMERAL})\s*(?:到|至|-|~|或)\s*(?:{NUMERAL})\s*(?:{_UNIT_RE})")
_BARE_AFTER_VERB = re.compile(r"(?:要|来|订|定|买|拿|跟|预定|预订|带|留)\s*(?P<n>\d+(?:\.\d+)?|[一两二三四五六七八九十俩仨]+)(?![\d.号楼栋点])")
# "我和我老公各一板", "我俩各一份": units for each of several people, all on the speaker's order.
_EACH_PERSON = re.compile(r"(?P<who>[^\s,，。]{1,12}?)各(?:来|要|订|买)?(?=\s*(?:[\d一两二三四五六七八九十]|$))")
_ALL_ITEMS = re.compile(r"各(?:来|要|订)?|都要|都来|全要|每样|每种|每个都|全部都?要|一样")
_FILLER_WORDS = """那么 那 我家 我们家 我们 我 也 就 还 再 吧 呀 啊 哦 哈 嘛 的 了 给 请 麻烦 谢谢 感谢 团长
    好的 好 嗯 一下 先 还是 算了 可以 吗 帮 帮忙 ok 谢 辛苦 亲 哈哈 呢 啦 噢 额 呃 喔 耶 滴 嘞 咯 ～ ~ ! ！
    拍 追加 追 和 及 还有 另外 数量 多要 少要 替 代 收到""".split()
_FILLER = re.compile("|".join(sorted(map(re.escape, _FILLER_WORDS), key=len, reverse=True)))
# Words that, left over around a quantity with no order verb, show a sentence rather than a note.
_NOT_A_NOTE = re.compile(r"(有|是|吃|送|到|剩|卖|够|坏|烂|发|退|换|收|看|说|问|想|觉得|很|太|真|都|没|不|只|才|多|贵|便宜|比|像|会|能|去|买|已经|差|对|赞|同意|楼上|一共|总共|每)")


_PLUS_SIGNS = re.compile(r"[x×*+]")


def _blank(rx: re.Pattern[str], text: str) -> str:
    """Replace matches with spaces of the same length, so positions still line up."""
    return rx.sub(lambda m: " " * len(m.group(0)), text)


def _blank_before(rx: re.Pattern[str], text: str, end: int) -> str:
    """Like ``_blank``, for the matches that start before ``end``."""
    return rx.sub(lambda m: " " * len(m.group(0)) if m.start() < end else m.group(0), text)


def _num(text: str) -> Decimal:
    if text == "半":
        return Decimal("0.5")
    return parse_numeral(text)


def classify_status(text: str) -> StatusQuery | None:
    """Recognise 我的订单 / 查单 / 进度 / 还差几箱, optionally naming a deal (#2)."""
    if len(text) > 30 or _STATUS_NOT.search(text):
        return None
    clauses = split_clauses(text)
    if len(clauses) > 1 and any(not (_MINE.search(c) or _PROGRESS.search(c)) and
                                (_TRIGGER.search(c) or _QTY.search(c)) for c in clauses):
        return None  # "还差几箱？我来两箱": the order matters more than the question
    ref = _DEAL_REF.search(text)
    deal_no = int(next(g for g in ref.groups() if g)) if ref else None
    if _MINE.search(text):
        return StatusQuery("mine", deal_no)
    if _PROGRESS.search(text):
        return StatusQuery("progress", deal_no)
    return None


_AGREEMENT = re.compile(r"^(?:\+1|\+|同问|同求|我也是|我也想知道|一样|我也想问|same|me too)+[!！.。~]*$")


_RANGE_SPAN = re.compile(
    rf"(?:{NUMERAL})\s*(?:到|至|-|~|或)\s*(?:{NUMERAL})\s*(?:{_UNIT_RE})?|[一两二三四五六七八九]{{2}}\s*(?:{_UNIT_RE})?")


def fill_range(text: str, answer: str) -> str | None:
    """Put the quantity of an answer ("那就三盒吧") where a range stood ("虾来两三盒")."""
    qty = _QTY.search(answer)
    span = _RANGE_SPAN.search(text)
    if qty is None or span is None:
        return None
    return text[: span.start()] + qty.group(0) + text[span.end():]


_SAME_AS = re.compile(r"^(?:我也是|我也一样|俺也一样|我也同样|同上|一样|一样的|和楼上一样|跟楼上一样|same|me too)"
                      r"(?:吧|哈|呀|啊|谢谢|谢谢团长)*[!！.。~]*$")


def is_same_as(text: str) -> bool:
    """"我也是" / "同上" / "一样": under a quoted order, the same order for the speaker."""
    return bool(_SAME_AS.match(text.strip()))


def is_agreement(text: str) -> bool:
    """"+1" or "同问" alone: agreeing with what was quoted, an order only if that was one."""
    return bool(_AGREEMENT.match(text.replace(" ", "")))


def is_question(text: str) -> bool:
    """Whether a normalised text asks something ("几号到货？", "甜不甜")."""
    return any(_is_question(c) for c in split_clauses(text)) if text else False


def _is_question(clause: str) -> bool:
    return bool(_QUESTION_END.search(clause) or _QUESTION_WORD.search(clause))


def split_clauses(text: str) -> list[str]:
    """Split on sentence punctuation and line breaks, keeping "?" with its clause."""
    parts = re.split(r"(?<=[?!。;；，,\n])|(?<=[^\d])\.(?!\d)|(?<=\d)\.(?!\d)|(?<=[吗呢嘛])\s+", text)
    return [p.strip(" ,，、。;；!\n") for p in parts if p.strip(" ,，、。;；!\n")]


_CN_DIGITS = "一二两三四五六七八九十半俩仨"
# Characters that are grammar, not product names, even when a product's name contains them.
_NOT_NAME_CHARS = set("要来买订定跟加拿带留我你他她的了也都再还就是一二两三四五六七八九十半个份箱盒袋斤包瓶"
                      "只串板件条块桶罐提套单组颗支根把片杯听大小新鲜特级精品各共那这谁啥吧呀哈啊先")


_NAME_CHAR = re.compile(r"[\u4e00-\u9fffa-z]")
_NUMBER_OR_UNIT = re.compile(rf"[\d{re.escape('一二两三四五六七八九十')}]*(?:{_UNIT_RE})?")


@functools.lru_cache(maxsize=4096)
def _name_fragments(name: str) -> tuple[tuple[str, bool], ...]:
    """What of an item's name a member may write, longest first: each 2+ character part that
    is not a number or unit alone (False), then the last character that "子"/"果" must follow
    (True). The same for every message, so it is worked out once per name."""
    name = re.sub(r"\s+", "", name)
    frags: dict[str, bool] = {}
    for length in range(len(name), 1, -1):
        for start in range(0, len(name) - length + 1):
            frag = name[start : start + length]
            if _NAME_CHAR.search(frag) and not _NUMBER_OR_UNIT.fullmatch(frag):
                frags.setdefault(frag, False)
    out = list(frags.items())
    if name:
        out.append((name[-1], True))
    return tuple(out)


def find_items(text: str, catalog: Sequence[CatalogItem]) -> list[tuple[int, int, CatalogItem]]:
    """Find item mentions in a clause: full names, 2+ character parts of names, "橙子" for 脐橙.

    Returns non-overlapping (start, end, item) spans, longest matches first, in text order.
    A fragment shared by items of different names (two deals both selling 苹果) matches none
    of them, so the caller asks.
    """
    candidates: list[tuple[int, int, int, CatalogItem]] = []
    for item in catalog:
        for frag, suffixed in _name_fragments(item.name):
            at = text.find(frag)
            while at >= 0:
                end = at + len(frag)
                if suffixed:  # "橙子" for 脐橙, "芒果" for 贵妃芒, "桃子" for 水蜜桃
                    if text[end : end + 1] in ("子", "果"):
                        candidates.append((at, end + 1, 1, item))
                        end += 1
                else:
                    candidates.append((at, end, len(frag), item))
                at = text.find(frag, end)
    # A single character that only one item's name holds, written right before a quantity
    # ("饺子皮2斤 馅1斤"), names that item.
    lone = [m.start(1) for m in re.finditer(
        rf"([\u4e00-\u9fff])(?=\s*(?:\d|[{_CN_DIGITS}]|[x×*+]|来|要|订|买|拿))", text)]
    # ... or right after a quantity ("来两袋米").
    lone += [m.start(1) for m in re.finditer(rf"(?:{NUMERAL})\s*(?:{_UNIT_RE})([\u4e00-\u9fff])", text)]
    for pos in lone:
        ch = text[pos]
        if ch in _NOT_NAME_CHARS:
            continue
        owners = {c.name for c in catalog if ch in c.name}
        if len(owners) == 1:
            item = next(c for c in catalog if ch in c.name)
            candidates.append((pos, pos + 1, 1, item))
    # A fragment that several differently named items share is no evidence for any of them.
    # (A weaker match of the same span, "贝果" as 肉松小贝's 贝 + 果, yields to a stronger one.)
    by_span: dict[tuple[int, int, int], set[str]] = {}
    for start, end, strength, item in candidates:
        by_span.setdefault((start, end, strength), set()).add(item.name)
    candidates.sort(key=lambda c: (-c[2], c[0]))
    taken: list[tuple[int, int, CatalogItem]] = []
    for start, end, strength, item in candidates:
        if len(by_span[(start, end, strength)]) > 1:
            continue
        if any(start < e and s < end for s, e, _ in taken):
            continue
        taken.append((start, end, item))
    taken.sort(key=lambda t: t[0])
    return taken


def _quantities(text: str, deal_unit: str | None) -> list[tuple[int, int, Decimal]]:
    """Quantities in a clause as (start, end, qty).

    Raises:
        RangeError: for a range ("两三箱") or a numeral nobody can order ("一万万箱"): the
            member is asked for a number rather than given a guess.
    """
    try:
        found = [(m.start(), m.end(), _qty_of(m, deal_unit)) for m in _QTY.finditer(text)]
        if not found:
            found = [(m.start("n"), m.end("n"), _num(m.group("n")))
                     for m in _BARE_AFTER_VERB.finditer(text)]
    except ValueError as exc:
        raise RangeError(str(exc)) from exc
    return found


# Weights in grams: a member may order in another weight unit than the deal's.
_GRAMS = {"斤": Decimal(500), "公斤": Decimal(1000), "千克": Decimal(1000), "kg": Decimal(1000),
          "克": Decimal(1), "g": Decimal(1)}


def _qty_of(m: re.Match[str], deal_unit: str | None) -> Decimal:
    if m.group("x") is not None:
        return _num(m.group("x"))
    if m.group("plus") is not None:
        return _num(m.group("plus"))
    if m.group("after_item") is not None:
        return _num(m.group("after_item"))
    if m.group("bare") is not None:
        return _num(m.group("bare"))
    qty = _num(m.group("n"))
    if m.group("half1") or m.group("half2"):
        qty += Decimal("0.5")
    unit = (m.group("unit") or "").lower()
    if unit == "打" and deal_unit != "打":
        qty *= 12
    if deal_unit is not None and unit in _GRAMS and deal_unit != unit:
        if deal_unit in _GRAMS:
            qty = qty * _GRAMS[unit] / _GRAMS[deal_unit]
        elif unit != "斤":
            # 1.5kg of eggs sold by the 板: no honest way to count it; ask for a number.
            # ("要一斤" of a deal sold by the 份 has always meant one 份 here.)
            raise ValueError(f"{unit} for a deal counted in {deal_unit}")
    return qty


def _mask(text: str, rx: re.Pattern[str]) -> str:
    """Hide matches (addresses, times) from the quantity parser, keeping positions."""
    return rx.sub(lambda m: "\x00" * len(m.group(0)), text)


Ref = CatalogItem | int  # an item by name, or by its number ("1号")


def _line(ref: Ref, qty: Decimal | None) -> OrderLine:
    if isinstance(ref, int):
        return OrderLine(None, qty, item_no=ref)
    return OrderLine(ref, qty)


_WRITTEN_UNIT = re.compile(_UNIT_RE)
_ANY_ITEM_UNITS = {"份", "个", "单"}  # "来两份" is two of whatever is meant, whatever its unit


def _item_by_unit(quantity: str, catalog: Sequence[CatalogItem]) -> CatalogItem | None:
    """The one item sold in the unit a quantity is written in ("那要一袋" when only the beef
    jerky comes in 袋), else None (no unit written, or several items share it)."""
    unit = _WRITTEN_UNIT.search(quantity)
    if unit is None or unit.group(0) in _ANY_ITEM_UNITS:
        return None
    same = [c for c in catalog if c.unit == unit.group(0)]
    return same[0] if len(same) == 1 else None


def _pair(refs: list[tuple[int, Ref]], qtys: list[tuple[int, int, Decimal]],
          all_items: bool) -> list[OrderLine]:
    """Pair item mentions with quantities: "苹果2箱 橙子1箱", "两箱苹果", "苹果橙子各一箱"."""
    tokens: list[tuple[int, int, object]] = [(s, 0, r) for s, r in refs]
    tokens += [(s, 1, q) for s, _, q in qtys]
    tokens.sort(key=lambda t: (t[0], t[1]))
    lines: list[OrderLine] = []
    open_refs: list[Ref] = []
    waiting: Decimal | None = None
    for _, kind, value in tokens:
        if kind == 0:
            ref: Ref = value  # type: ignore[assignment]
            if waiting is not None and not open_refs:
                lines.append(_line(ref, waiting))
                waiting = None
            else:
                open_refs.append(ref)
            continue
        qty: Decimal = value  # type: ignore[assignment]
        if open_refs:
            if all_items:
                lines.extend(_line(r, qty) for r in open_refs)
            else:
                lines.extend(_line(r, None) for r in open_refs[:-1])
                lines.append(_line(open_refs[-1], qty))
            open_refs = []
        elif waiting is None:
            waiting = qty
        else:
            lines.append(OrderLine(None, waiting))
            waiting = qty
    if waiting is not None and all_items and open_refs:
        lines.extend(_line(r, waiting) for r in open_refs)
        open_refs, waiting = [], None
    lines.extend(_line(r, None) for r in open_refs)
    if waiting is not None:
        lines.append(OrderLine(None, waiting))
    return lines


def _people(clause: str) -> int:
    """How many people "各" shares out to: "我和我老公各一板" 2, "我们仨各一份" 3; else 1."""
    m = _EACH_PERSON.search(clause)
    if not m:
        return 1
    who = m.group("who")
    for words, n in (("俩|两个人|两人|两家", 2), ("仨|三个人|三人|三家", 3), ("四个人|四人|四家", 4)):
        if re.search(words, who):
            return n
    joined = len(re.findall(r"和|跟|与|、|及", who))
    return joined + 1 if joined else 1


def _in_names(word: str, catalog: Sequence[CatalogItem]) -> bool:
    """Whether every character of a leftover word belongs to one item name ("米" for 大米)."""
    return any(all(ch in c.name for ch in word) for c in catalog)


def _clean_note(text: str) -> str:
    text = text.replace("\x00", " ")
    text = re.sub(r"\s+", " ", text).strip(" ,，。:：;；、+#")
    return text


def parse_member_message(text: str, catalog: Sequence[CatalogItem] = ()
                         ) -> OrderIntent | Ambiguous | None:
    """Parse a normalised member message into an order intent, or None if it is not one.

    Args:
        text: The normalised reply text (quote and @mentions already removed).
        catalog: Items of the deals the member could be ordering from (open deals of the room).

    Returns:
        An ``OrderIntent``, an ``Ambiguous`` range that must be asked about, or None.
    """
    text = strip_mentions(text)
    if not text or len(text) > 500:
        return None
    deal_no = None
    ref = _DEAL_REF.search(text)
    if ref:
        deal_no = int(next(g for g in ref.groups() if g))
        text = (text[: ref.start()] + " " + text[ref.end():]).strip()
    units = {c.unit for c in catalog}
    deal_unit = units.pop() if len(units) == 1 else None  # items in different units: none
    multi = any(c.items_in_deal > 1 for c in catalog)

    placed_for = None
    behalf = _BEHALF.search(text)
    if behalf and behalf.group("who") not in _NOT_SOMEONE_ELSE:
        placed_for = behalf.group("who")
        text = text[: behalf.start("who")] + text[behalf.end("who"):]

    if _CORRECTION.search(text) and re.search(rf"{NUMERAL}", text):
        text = _CORRECTION.sub(lambda m: "，" + m.group(0).strip(" ,，。!！") + "，", text)

    kind: Kind = "order"
    lines: list[OrderLine] = []
    notes: list[str] = []
    all_items = False
    change_hint = False
    more = False
    explicit = False
    cancel_lines: list[OrderLine] | None = None
    for clause in split_clauses(text):
        if _CHANGE_HINT.match(clause):
            if lines:  # "要2箱，哦不，要3箱": the later number replaces this message's own
                lines, kind, all_items = [], "order", False
            else:
                change_hint = True  # "我改一下，要4盒": the next quantity is the new total
            continue
        if _is_question(clause) or _NOISE.search(clause):
            continue
        if _RANGE.search(clause):
            return Ambiguous(clause)
        work = _mask(_mask(_mask(clause, _PRICE), _ADDRESS), _TIME_SPAN)
        if _PAST.search(work) and not re.search(r"(不要|取消|不买|不订|不跟)", work):
            continue
        items = find_items(work, catalog)
        masked = work
        for s, e, _ in items:
            masked = masked[:s] + "\x01" * (e - s) + masked[e:]
        refs: list[tuple[int, Ref]] = [(s, it) for s, _, it in items]
        if multi:
            for m in _ITEM_NO.finditer(masked):
                try:
                    no = int(_num(m.group("a") or m.group("b")))
                except (ValueError, RangeError):
                    continue
                refs.append((m.start(), no))
                masked = masked[: m.start()] + "\x01" * (m.end() - m.start()) + masked[m.end():]
        refs.sort(key=lambda r: r[0])
        # Cancels: the whole clause is a cancel word, or "<item>不要了", "我那单不要了".
        said = re.sub(r"\s+", "", _MY_ORDER_WORDS.sub("", masked.replace("\x01", "")))
        bare = _FILLER.sub("", said)
        if (bare or refs) and (_CANCEL.match(bare or "x") or _CANCEL.match(said or "x")):
            cancel_lines = [_line(r, None) for _, r in refs] or [OrderLine(None, None)]
            continue
        try:
            qtys = _quantities(masked, deal_unit)
        except RangeError:
            return Ambiguous(clause)
        if (not qtys and not refs and _CANCEL_TAIL.search(said) and len(said) <= 16
                and not _SOMEONE_ELSE.search(said)):
            cancel_lines = [OrderLine(None, None)]
            continue
        has_all = bool(_ALL_ITEMS.search(masked)) and multi
        clause_kind: Kind = "order"
        if (_SET.search(masked) or change_hint) and (qtys or refs):
            clause_kind = "set"
        elif _SUB.search(masked) and qtys:
            clause_kind = "sub"
        trigger = _TRIGGER.search(masked)
        if trigger and trigger.group(0) == "要" and _NOT_AFTER_YAO.search(masked):
            trigger = None
        if trigger and trigger.group(0) == "来" and _NOT_AFTER_LAI.search(masked):
            trigger = None
        residue = masked
        for s, e, _ in qtys:
            residue = residue[:s] + " " * (e - s) + residue[e:]
        residue = residue.replace("\x01", " ")
        for rx in (_ALL_ITEMS, _ADD, _SUB, _SET):
            residue = _blank(rx, residue)
        # Order verbs up to the last quantity or item are the order; "要2盒 明天下午来拿"
        # keeps the later 来拿 in the note.
        last = max([e for _, e, _ in qtys] + [s + 1 for s, _ in refs]
                   + [trigger.end() if trigger else 0])
        residue = _blank_before(_TRIGGER, residue, last)
        for rx in (_FILLER, _PLUS_SIGNS):
            residue = _blank(rx, residue)
        words = [w for w in residue.replace("\x00", " ").split() if not _in_names(w, catalog)]
        sentence_like = bool(_NOT_A_NOTE.search("".join(words))) or len("".join(words)) > 12
        is_order = clause_kind != "order"
        if not is_order and (qtys or refs):
            if trigger is not None:
                # "+1" after a sentence ("楼上说得对+1") agrees with it; other verbs order.
                is_order = not (trigger.group(0).startswith("+") and sentence_like)
            else:
                # No verb: a bare quantity whose leftovers read like a note (a name, a
                # building) is an order; "我家有2箱" and "2斤一瓶" (two numbers, no item) are not.
                is_order = bool(qtys) and not sentence_like and (len(qtys) == 1 or bool(refs))
        elif not is_order and _STRONG_ALONE.match(re.sub(r"\s+", "", clause)):
            is_order = True
        if not is_order:
            if _FILLER.sub("", clause).strip(" ,，。!") and (lines or not _NOT_A_NOTE.search(clause)):
                notes.append(clause)
            continue
        if clause_kind != "order":
            kind = clause_kind
        all_items = all_items or has_all
        more = more or bool(_MORE.search(masked))
        explicit = explicit or trigger is not None or clause_kind != "order" or not qtys
        clause_lines = _pair(refs, qtys, has_all) or [OrderLine(None, None)]
        if multi and not refs and not has_all and len(qtys) == 1:
            clause_lines = [replace(ln, item=_item_by_unit(masked[qtys[0][0]:qtys[0][1]], catalog))
                            if ln.item is None and ln.item_no is None else ln for ln in clause_lines]
        if has_all and not refs:
            clause_lines = [OrderLine(None, clause_lines[0].qty)]
        people = _people(masked) if not multi else 1
        if people > 1:
            clause_lines = [replace(ln, qty=(ln.qty or Decimal(1)) * people) for ln in clause_lines]
        lines.extend(clause_lines)
        # Addresses and times were masked for parsing; they belong in the note as written.
        kept = "".join(c if r == "\x00" else r for c, r in zip(clause, residue, strict=True))
        notes.append(" ".join(w for w in kept.split() if not _in_names(w, catalog)))
    if cancel_lines is not None:
        if not lines:
            return OrderIntent("cancel", tuple(cancel_lines), deal_no=deal_no, explicit=True)
        if all(ln.item is None and ln.item_no is None for ln in cancel_lines):
            # "取消了，那水饺要两袋" / "不要了，重新来两袋": what follows is the new total.
            kind, explicit = "set", True
    if not lines:
        return None
    note = _clean_note(" ".join(notes))
    if placed_for:
        note = _clean_note(f"代{placed_for} {note}")
    return OrderIntent(kind, tuple(lines), deal_no=deal_no, all_items=all_items,
                       note=note or None, placed_for=placed_for, more=more, explicit=explicit)


_HELP = re.compile(r"^(?:帮助|求助|怎么用|如何使用|使用说明|说明书|怎么下单|怎么参团|机器人怎么用|help|菜单)"
                   r"(?:呀|啊|呢|一下)?[?？!！。.~]*$")


def is_help_request(text: str) -> bool:
    """"帮助" / "怎么用" / "怎么下单" alone (mentions already stripped)."""
    return bool(_HELP.match(text.strip()))
