"""Property tests at the dispatcher level: whatever members type, nothing breaks, garbage
records no order, and member names are printed as written, never run as template code.

Each test builds one Chat on an in-memory database and drives it from its own event loop,
so that hypothesis can run many examples against the same conversation; every example sends
messages with fresh ids.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import string
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from chat import Chat
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.types import OutgoingMessage
from handlers.parsing.text import normalize

T = TypeVar("T")

DEAL = "开团 山东富士苹果 39.9元/箱 下周五晚8点截团"
LEADER = "王团长"
MEMBERS = ("李阿姨", "张姐", "赵大爷")
SEP = "- - - - - - - - - - - - - - -"
FAST = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


class _Failures(logging.Handler):
    """Collects the errors the dispatcher logs when a handler raises (it swallows them)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Bot:
    """A Chat with a deal open, driven synchronously from one event loop."""

    def __init__(self, runner: asyncio.Runner, chat: Chat, failures: _Failures) -> None:
        self._runner = runner
        self.chat = chat
        self._failures = failures
        self._ids = itertools.count()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def say(self, name: str, text: str, *, private: bool = False) -> list[OutgoingMessage]:
        """Say something with a fresh message id; fail on any handler error."""
        before = len(self._failures.records)
        out = self.run(self.chat.say(name, text, private=private,
                                     msg_id=f"fuzz:{next(self._ids)}"))
        self.check(before, text)
        return out

    def flush(self) -> list[OutgoingMessage]:
        before = len(self._failures.records)
        out = self.run(self.chat.flush())
        self.check(before, "(flush)")
        return out

    def check(self, before: int, text: str) -> None:
        new = self._failures.records[before:]
        assert not new, f"handler failed on {text[:300]!r}: {new[0].exc_info!r}"
        assert all(m.text.strip() for m in self.chat.sent), "the bot sent an empty message"

    def orders(self) -> dict[str, dict[str, float]]:
        return self.chat.orders()


@contextmanager
def live_bot(deal: str | None = DEAL) -> Iterator[Bot]:
    """A fresh in-memory conversation in 测试群 (王团长 leads), with a deal open."""
    failures = _Failures()
    logger = logging.getLogger("bot")
    logger.addHandler(failures)
    try:
        with asyncio.Runner() as runner:
            chat = Chat("sqlite://")
            bot = Bot(runner, chat, failures)
            try:
                runner.run(chat.room("测试群"))
                runner.run(chat.leader(LEADER))
                if deal is not None:
                    card = bot.say(LEADER, deal)
                    assert len(card) == 1
                    assert "#1" in card[0].text
                yield bot
            finally:
                chat.close()
    finally:
        logger.removeHandler(failures)


# --- strategies ---------------------------------------------------------------------------------

EMOJI = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF, categories=["So"])
DINGBATS = st.characters(min_codepoint=0x2600, max_codepoint=0x27BF, categories=["So"])
CONTROL = st.characters(categories=["Cc"])
INVISIBLE = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\ufe0f",
                             "\u2005", "\u3000", " ", "\n", "\t"])
# Latin letters and ASCII punctuation without "+": "+" alone is an order ("+1") by design.
LATIN = st.sampled_from(string.ascii_letters)
PUNCT = st.sampled_from([c for c in string.punctuation if c != "+"] + list("「」：，。！？…—·《》【】"))
GARBAGE_CHAR = st.one_of(LATIN, PUNCT, EMOJI, DINGBATS, CONTROL, INVISIBLE)
garbage = st.text(alphabet=GARBAGE_CHAR, min_size=1, max_size=80)

ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=300)
any_text = st.one_of(ANY_TEXT, st.text(alphabet=st.one_of(GARBAGE_CHAR, st.characters(
    blacklist_categories=["Cs"])), max_size=300))

ORDER_BITS = ["跟一单", "+1", "我要2箱", "两箱", "x2", "×3", "要五斤", "２箱", "十二份", "改成3箱",
              "再加一箱", "减一箱", "取消", "不要了", "苹果两箱", "帮王阿姨订一份", "3号楼302", "接龙",
              "#1", "#2", "我的订单", "进度", "截团", "汇总", "？", "吗", "同问+1", "1号两份", "各一份",
              "两三箱", "999999箱", "0箱", "0.5斤", "一万万箱", "九千九百九十九箱", "#99999999999999999999"]
fragment = st.one_of(st.sampled_from(ORDER_BITS), garbage, ANY_TEXT.map(lambda s: s[:10]))
mixed = st.lists(fragment, min_size=1, max_size=8).map("".join)

mention_name = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Z", "Cc"],
                                              blacklist_characters="@\u2005"),
                       min_size=1, max_size=12)


def mention(name: str, sep: str) -> str:
    return f"@{name}{sep}"


mentions = st.lists(st.tuples(mention_name, st.sampled_from(["\u2005", " ", ""])),
                    min_size=1, max_size=4).map(lambda ms: "".join(mention(n, s) for n, s in ms))


# --- no exception escapes, whatever is said --------------------------------------------------

def test_random_unicode_never_breaks_dispatch() -> None:
    with live_bot() as bot:

        @FAST
        @given(text=any_text, who=st.sampled_from(MEMBERS), private=st.booleans())
        @example(text="\x00\x01\x7f\ud7ff\U0010ffff", who="李阿姨", private=False)
        @example(text="", who="李阿姨", private=False)
        @example(text="\u200b\u200d\ufeff", who="李阿姨", private=True)
        def check(text: str, who: str, private: bool) -> None:
            bot.say(who, text, private=private)

        check()
        bot.flush()


def test_order_words_mixed_with_garbage_never_break_dispatch() -> None:
    with live_bot() as bot:

        @FAST
        @given(text=mixed, who=st.sampled_from(MEMBERS))
        def check(text: str, who: str) -> None:
            bot.say(who, text)

        check()
        bot.flush()


def test_leader_commands_with_garbage_never_break_dispatch() -> None:
    with live_bot() as bot:
        commands = st.sampled_from(["截团", "取消团", "延期", "改价", "补货", "到货", "汇总", "已付",
                                    "核销", "设置团长", "取消团长", "开团"])

        @FAST
        @given(cmd=commands, ref=st.one_of(st.none(), st.integers(0, 10**30)), rest=mixed)
        @example(cmd="延期", ref=1, rest="到 99999999999999999999小时后")
        def check(cmd: str, ref: int | None, rest: str) -> None:
            text = f"{cmd} #{ref} {rest}" if ref is not None else f"{cmd} {rest}"
            bot.say(LEADER, text)

        check()
        bot.flush()


def test_a_deal_number_of_any_size_orders_nothing_elsewhere() -> None:
    with live_bot() as bot:

        @FAST
        @given(ref=st.integers(2, 10**30), order=st.sampled_from(["跟一单", "要2箱", "#{} 要一箱"]))
        def check(ref: int, order: str) -> None:
            before = bot.orders()
            text = order.format(ref) if "{}" in order else f"#{ref} {order}"
            bot.say("李阿姨", text)
            bot.flush()
            assert bot.orders() == before

        check()


# --- garbage records nothing ----------------------------------------------------------------

def test_garbage_records_no_order_and_gets_no_reply() -> None:
    with live_bot() as bot:

        @settings(FAST, max_examples=300)
        @given(text=garbage, who=st.sampled_from(MEMBERS))
        @example(text="😀😀😀", who="李阿姨")
        @example(text="ok", who="李阿姨")
        @example(text="xxx", who="李阿姨")
        @example(text="「a：b」\n- - - - - -\n!!!", who="李阿姨")
        def check(text: str, who: str) -> None:
            sent = bot.say(who, text) + bot.flush()
            assert bot.orders() == {}
            assert sent == [], f"{text!r} got {[m.text for m in sent]}"

        check()


def test_hundred_kilobyte_messages() -> None:
    with live_bot() as bot:
        unit = st.one_of(garbage, st.sampled_from(["跟一单", "我要2箱，", "1. 李阿姨 2箱\n", "「张姐：",
                                                   SEP + "\n", "@张姐\u2005", "#接龙\n"]))

        heads = st.sampled_from(["", "#接龙\n山东富士苹果\n", "「张姐：要2箱」\n" + SEP + "\n"])

        @settings(FAST, max_examples=8)
        @given(piece=unit, head=heads)
        def check(piece: str, head: str) -> None:
            text = head + (piece * (100_000 // len(piece) + 1))[:100_000]
            started = time.monotonic()
            bot.say("李阿姨", text)
            bot.flush()
            assert time.monotonic() - started < 10

        check()

        @settings(FAST, max_examples=5)
        @given(text=garbage)
        def pure_garbage(text: str) -> None:
            before = bot.orders()
            bot.say("张姐", (text * (100_000 // len(text) + 1))[:100_000])
            bot.flush()
            assert bot.orders().get("张姐") == before.get("张姐")

        pure_garbage()


# --- quote-replies, nested ----------------------------------------------------------------------

def quoted(sender: str, text: str, dashes: int) -> str:
    return f"「{sender}：{text}」\n" + " ".join(["-"] * dashes) + "\n"


@st.composite
def nested_quote(draw: st.DrawFn) -> str:
    """A quote of a quote of a quote...: each level quotes the text of the level inside it."""
    senders = st.sampled_from(["张姐", "李阿姨", "a", "团员"])
    dashes = st.integers(5, 15)
    text = draw(st.sampled_from(ORDER_BITS[:16]))
    for _ in range(draw(st.integers(0, 3))):
        # The quoted message was itself a quote-reply: its quote, a dashed line, its reply.
        inner_reply = draw(st.sampled_from(["要9箱", "跟一单", "改成3箱", "取消", "再加两箱", "好的"]))
        text = quoted(draw(senders), text, draw(dashes)) + inner_reply
    return quoted(draw(senders), text, draw(dashes))


def test_only_the_reply_after_a_nested_quote_counts() -> None:
    names = itertools.count()
    with live_bot() as bot:

        @FAST
        @given(quote=nested_quote(), reply=st.one_of(garbage, st.just("跟一单")))
        @example(quote="「a：「b：c」\n- - - - -\nd」\n- - - - - -\n", reply="跟一单")
        def check(quote: str, reply: str) -> None:
            who = f"团员{next(names)}"  # a new member each time: nothing of theirs yet
            bot.say(who, quote.rstrip("\n") + "\n" + reply)
            bot.flush()
            got = bot.orders().get(who, {}).get("山东富士苹果", 0)
            assert got == (1 if reply == "跟一单" else 0), f"reply {reply!r} after the quote ordered {got}"

        check()


# --- malformed 接龙 ---------------------------------------------------------------------------

entry_no = st.one_of(st.integers(0, 30), st.integers(31, 9999), st.integers(10**4, 10**30))
entry_text = st.one_of(st.just(""), garbage, mixed, st.sampled_from(
    ["李阿姨 2箱", "张姐 两箱", "赵大爷", "3号楼 1箱", "x2", "99999箱", "0箱", "要一万万箱", "？？？"]))
entry = st.tuples(entry_no, st.sampled_from([". ", "、", ".", ") ", "．"]), entry_text).map(
    lambda e: f"{e[0]}{e[1]}{e[2]}")


@st.composite
def malformed_jielong(draw: st.DrawFn) -> str:
    header = draw(st.lists(st.one_of(garbage, st.just("山东富士苹果 39.9元/箱"), st.just("")),
                           max_size=3))
    lines = draw(st.lists(st.one_of(entry, garbage, st.just("")), min_size=0, max_size=12))
    if lines and draw(st.booleans()):
        lines.append(draw(st.sampled_from(lines)))  # a duplicated line
    body = [*header, *lines]
    if not normalize("\n".join(body)):
        # A bare "接龙" is no list but a member's 1-unit order (SPEC §3), and orders add up.
        body = ["山东富士苹果 39.9元/箱"]
    return "\n".join([draw(st.sampled_from(["#接龙", "接龙", "＃接龙", " #接龙 "])), *body])


def test_malformed_jielong_is_idempotent_and_touches_only_the_senders_orders() -> None:
    with live_bot() as bot:
        bot.say("张姐", "#接龙\n山东富士苹果 39.9元/箱\n\n1. 张姐 2箱")
        bot.say("赵大爷", "要3箱")
        bot.flush()

        @FAST
        @given(text=malformed_jielong(), who=st.sampled_from(["李阿姨", "小王", "刘"]))
        @example(text="#接龙\n山东富士苹果\n\n9999. 李阿姨 2箱\n9999. 李阿姨 2箱\n1.\n2. \n"
                      "99999999999999999999. x", who="李阿姨")
        def check(text: str, who: str) -> None:
            before = bot.orders()
            bot.say(who, text)
            bot.flush()
            after = bot.orders()
            others = {m: q for m, q in after.items() if m != who}
            assert others == {m: q for m, q in before.items() if m != who}
            # The same list posted again counts nothing new. (Only by the same sender: for
            # anyone else, a line of theirs that this list changed is their own edit.)
            sent = bot.say(who, text) + bot.flush()
            assert bot.orders() == after
            noise = [m.text for m in sent if "新增" in m.text or "修改" in m.text]
            assert noise == [], f"re-post of {text!r} acknowledged {noise}"

        check()


# --- @mentions -----------------------------------------------------------------------------------

def test_random_mentions_never_break_dispatch() -> None:
    with live_bot() as bot:

        @FAST
        @given(head=mentions, tail=st.one_of(mixed, st.just("")), who=st.sampled_from(MEMBERS))
        def check(head: str, tail: str, who: str) -> None:
            bot.say(who, head + tail)

        check()
        bot.flush()


def test_appointing_any_name_prints_it_as_written() -> None:
    with live_bot() as bot:
        safe_name = mention_name.filter(lambda n: not n.rstrip().endswith(("?", "？", "吗", "么", "呢")))

        @FAST
        @given(names=st.lists(safe_name, min_size=1, max_size=3, unique=True),
               verb=st.sampled_from(["设置团长", "取消团长"]))
        @example(names=["{{7*7}}"], verb="设置团长")
        @example(names=["{%for%}", "{#"], verb="设置团长")
        @example(names=["{{7*7}}"], verb="取消团长")
        def check(names: list[str], verb: str) -> None:
            replies = bot.say(LEADER, verb + " " + "".join(mention(n, "\u2005") for n in names))
            assert len(replies) == 1
            for name in names:
                assert name in replies[0].text, f"{name!r} not in {replies[0].text!r}"
            if not any("49" in n for n in names):
                assert "49" not in replies[0].text

        check()


# --- member names are data, never template source -----------------------------------------------

TEMPLATE_BITS = ["{{ 7*7 }}", "{% for x in y %}", "{#", "#}", "{{", "}}", "{% endfor %}", "{% raw %}",
                 "{{ self }}", "{%- if true -%}", "{{ config }}", "{{ ''.__class__ }}"]
template_name = st.builds(lambda a, b, c: a + b + c,
                          st.text(alphabet=st.sampled_from("张李阿姨ab_-"), max_size=3),
                          st.sampled_from(TEMPLATE_BITS),
                          st.text(alphabet=st.sampled_from("张李阿姨ab_-{}%#"), max_size=3))


def test_template_syntax_in_member_names_is_printed_literally() -> None:
    with live_bot() as bot:
        seen: set[str] = set()

        @FAST
        @given(name=template_name)
        @example(name="{{ 7*7 }}")
        @example(name="{% for x in y %}")
        @example(name="{#")
        def check(name: str) -> None:
            first = name not in seen
            seen.add(name)
            bot.say(name, "跟一单")
            ack = "\n".join(m.text for m in bot.flush())
            assert f"{name} {'1箱' if first else ''}" in ack, f"{name!r} not printed in {ack!r}"
            refusal = bot.say(name, "截团")
            assert len(refusal) == 1
            assert f"@{name} " in refusal[0].text
            if "49" not in name:
                assert "49" not in refusal[0].text

        check()
        # The leader's summary lists every one of them as written.
        summary = "\n".join(m.text for m in bot.say(LEADER, "汇总"))
        for name in seen:
            assert name in summary


# --- regressions: what the properties above found, one case each --------------------------------

@pytest.mark.parametrize(("who", "text"), [
    ("李阿姨", "#99999999999999999999 跟一单"),
    ("李阿姨", "#9223372036854775808 要2箱"),
    ("李阿姨", "要一万万箱"),
    (LEADER, "截团 #99999999999999999999"),
    (LEADER, "汇总 #9223372036854775808"),
    (LEADER, "取消团 #99999999999999999999"),
])
def test_huge_numbers_are_answered_not_crashed_on(who: str, text: str) -> None:
    with live_bot() as bot:
        bot.say(who, text)
        bot.flush()
        assert bot.orders() == {}
        assert bot.chat.export()["deals"][0]["status"] == "open"


@pytest.mark.parametrize("reply", ["哈哈", "好的谢谢"])
def test_orders_inside_a_nested_quote_are_not_the_speakers(reply: str) -> None:
    with live_bot() as bot:
        text = ("「a：「b：「c：跟一单」\n- - - - -\n要9箱」\n- - - - -\n要3箱」\n"
                "- - - - - - - - - - - - - - -\n" + reply)
        bot.say("李阿姨", text)
        bot.flush()
        assert bot.orders() == {}


def test_the_reply_after_a_nested_quote_is_the_order() -> None:
    with live_bot() as bot:
        bot.say("李阿姨", "「张姐：「李阿姨：要9箱」\n- - - - -\n我也要3箱」\n- - - - - - - -\n跟一单")
        bot.flush()
        assert bot.orders() == {"李阿姨": {"山东富士苹果": 1}}


def test_a_jielong_repost_with_a_duplicated_number_changes_and_says_nothing() -> None:
    with live_bot() as bot:
        text = "#接龙\n山东富士苹果\n\n5. 李阿姨 2箱\n5. 李阿姨 3箱"
        bot.say("李阿姨", text)
        bot.flush()
        after = bot.orders()
        assert after != {}
        sent = bot.say("李阿姨", text) + bot.flush()
        assert bot.orders() == after
        assert [m.text for m in sent] == []


@pytest.mark.parametrize("text", [
    "#接龙\n山东富士苹果 39.9元/箱",
    "#接龙\n山东富士苹果 39.9元/箱\n\n",
    "山东富士苹果 39.9元/箱",
    "39.9元/箱",
])
def test_a_price_or_an_empty_jielong_records_nothing(text: str) -> None:
    with live_bot() as bot:
        for _ in range(2):
            bot.say("李阿姨", text)
            bot.flush()
            assert bot.orders() == {}
