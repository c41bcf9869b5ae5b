"""The domain's invariants, through the chat and directly through ``models.ops``.

Limits and stock are refused with the numbers, a deal closes exactly once, a redelivered
message is handled once, a 接龙 re-post counts nothing new, members change only their own
orders, and only leaders run leader commands.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from chat import Chat
from sqlmodel import Session

from bot.jobs import close_deal_job, remind_deal_job
from models import ops
from models.tables import Deal, Item, Member

APPLES = "开团 山东富士苹果 39.9元/箱 20箱成团 明晚8点截团"
LIMITED = "开团 山东富士苹果 39.9元/箱 限量10箱 每人限购5箱 明晚8点截团"
# 2026-11-24 is a Tuesday: 明晚8点 is 2026-11-25 20:00.
DEADLINE = "2026-11-25 20:00"


def joined(messages: list) -> str:  # type: ignore[type-arg]
    return "\n".join(m.text for m in messages)


async def open_deal(chat: Chat, command: str = APPLES) -> None:
    card = await chat.say("王团长", command)
    assert len(card) == 1
    assert "#1" in card[0].text


def jielong(*lines: str) -> str:
    return "\n".join(["#接龙", "山东富士苹果 39.9元/箱", "", *lines])


def deal_export(chat: Chat) -> dict:  # type: ignore[type-arg]
    return chat.export()["deals"][0]


# --- limits and stock -------------------------------------------------------------------------

async def test_order_over_the_member_limit_is_refused_with_the_numbers(chat: Chat) -> None:
    await open_deal(chat, LIMITED)
    await chat.say("李阿姨", "要6箱")
    refused = joined(await chat.flush())
    assert "限购5箱" in refused
    assert "@李阿姨" in refused
    assert chat.orders() == {}

    await chat.say("李阿姨", "要3箱")
    await chat.flush()
    await chat.say("李阿姨", "再加3箱")
    refused = joined(await chat.flush())
    assert "限购5箱" in refused
    assert "3箱" in refused
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 3}}


async def test_order_over_the_stock_is_refused_with_what_is_left(chat: Chat) -> None:
    await open_deal(chat, LIMITED)
    await chat.say("李阿姨", "要5箱")
    await chat.say("张姐", "要2箱")
    await chat.say("赵大爷", "要5箱")
    acks = joined(await chat.flush())
    assert "仅剩3箱" in acks
    assert "@赵大爷" in acks
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 5}, "张姐": {"山东富士苹果": 2}}


async def test_item_stock_is_refused_with_what_is_left(chat: Chat) -> None:
    await open_deal(chat, "#开团 周末水果团\n1. 富士苹果 39.9元/箱\n"
                          "2. 赣南脐橙 29.9元/箱 限量3箱\n截团：周五20:00")
    await chat.say("李阿姨", "橙子2箱")
    await chat.say("张姐", "橙子2箱")
    acks = joined(await chat.flush())
    assert "仅剩1箱" in acks
    assert "@张姐" in acks
    assert chat.orders() == {"李阿姨": {"赣南脐橙": 2}}


async def test_order_after_the_close_is_refused_naming_the_deal(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", "跟一单")
    await chat.say("王团长", "截团")
    await chat.flush()
    await chat.say("张姐", "我要2箱")
    refused = joined(await chat.flush())
    assert "#1 已截团" in refused
    assert "@张姐" in refused
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 1}}


async def test_order_after_the_deadline_is_refused_naming_the_deal(chat: Chat) -> None:
    await open_deal(chat, "开团 山东富士苹果 39.9元/箱 明晚8点截团")
    await chat.say("李阿姨", "跟一单")
    await chat.at("2026-11-25 20:05")
    await chat.say("张姐", "跟一单")
    refused = joined(await chat.flush())
    assert "#1 已截团" in refused
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 1}}


@pytest.mark.parametrize("qty", ["要0箱", "要1000箱", "要999999箱"])
async def test_insane_quantities_record_nothing(chat: Chat, qty: str) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", qty)
    await chat.flush()
    assert chat.orders() == {}


# --- redelivery and 接龙 ------------------------------------------------------------------------

async def test_the_same_message_id_is_handled_once(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", "要2箱", msg_id="same")
    first = joined(await chat.flush())
    assert "李阿姨 2箱" in first
    assert await chat.say("李阿姨", "要2箱", msg_id="same") == []
    assert await chat.flush() == []
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 2}}


async def test_a_redelivered_deal_command_opens_one_deal(chat: Chat) -> None:
    assert len(await chat.say("王团长", APPLES, msg_id="open-1")) == 1
    assert await chat.say("王团长", APPLES, msg_id="open-1") == []
    assert len(chat.export()["deals"]) == 1


async def test_a_jielong_repost_counts_nothing_new(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", jielong("1. 李阿姨 2箱"))
    await chat.say("张姐", jielong("1. 李阿姨 2箱", "2. 张姐 3号楼 1箱"))
    await chat.flush()
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 2}, "张姐": {"山东富士苹果": 1}}

    await chat.say("赵大爷", jielong("1. 李阿姨 2箱", "2. 张姐 3号楼 1箱"))
    await chat.say("李阿姨", jielong("1. 李阿姨 2箱", "2. 张姐 3号楼 1箱"))
    assert await chat.flush() == []
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 2}, "张姐": {"山东富士苹果": 1}}

    await chat.say("赵大爷", jielong("1. 李阿姨 2箱", "2. 张姐 3号楼 1箱", "3. 赵大爷 两箱"))
    acks = joined(await chat.flush())
    assert "赵大爷 2箱" in acks
    assert "李阿姨" not in acks
    assert "张姐" not in acks
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 2}, "张姐": {"山东富士苹果": 1},
                             "赵大爷": {"山东富士苹果": 2}}


async def test_a_jielong_repost_counts_nothing_when_it_also_moved_a_changed_line(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", jielong("1. 李阿姨 2箱"))
    await chat.flush()
    # Her line 1 changes, and its old text shows up again as line 2: a line seen before,
    # not a new order. Posting the same list again must not count line 2 then either.
    listing = jielong("1. 李阿姨 3箱", "2. 李阿姨 2箱")
    await chat.say("李阿姨", listing)
    await chat.flush()
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 3}}
    await chat.say("李阿姨", listing)
    assert await chat.flush() == []
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 3}}


async def test_naming_another_members_order_changes_nobodys(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("杨阿姨", "要两箱")
    await chat.say("小魏", "一箱")
    await chat.say("阿彬", "来一箱")
    await chat.flush()
    await chat.say("杨阿姨", "小魏那单改成5箱吧，她家人多")
    await chat.say("阿彬", "把杨阿姨的取消掉")
    await chat.say("阿彬", "帮小魏取消")
    await chat.flush()
    assert chat.orders() == {"杨阿姨": {"山东富士苹果": 2}, "小魏": {"山东富士苹果": 1},
                             "阿彬": {"山东富士苹果": 1}}
    # Their own orders, named as theirs, still change.
    await chat.say("杨阿姨", "我那单改成3箱")
    await chat.say("小魏", "小魏的改成2箱")
    await chat.flush()
    assert chat.orders() == {"杨阿姨": {"山东富士苹果": 3}, "小魏": {"山东富士苹果": 2},
                             "阿彬": {"山东富士苹果": 1}}


async def test_editing_another_members_jielong_line_changes_nothing(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", jielong("1. 李阿姨 2箱"))
    await chat.flush()
    await chat.say("张姐", jielong("1. 李阿姨 5箱", "2. 张姐 1箱"))
    acks = joined(await chat.flush())
    assert "李阿姨" not in acks
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 2}, "张姐": {"山东富士苹果": 1}}
    # Removing someone else's line is no cancel either.
    await chat.say("张姐", jielong("2. 张姐 1箱"))
    await chat.flush()
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 2}, "张姐": {"山东富士苹果": 1}}


async def test_editing_ones_own_jielong_line_changes_ones_own_order(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", jielong("1. 李阿姨 2箱"))
    await chat.say("张姐", jielong("1. 李阿姨 2箱", "2. 张姐 1箱"))
    await chat.flush()
    await chat.say("李阿姨", jielong("1. 李阿姨 3箱", "2. 张姐 1箱"))
    acks = joined(await chat.flush())
    assert "李阿姨" in acks
    assert "3箱" in acks
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 3}, "张姐": {"山东富士苹果": 1}}


# --- closing exactly once -------------------------------------------------------------------

async def test_close_deal_job_twice_closes_and_announces_once(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", "要2箱")
    await chat.flush()
    chat.clock.set(chat.clock.now() + timedelta(days=2))
    first = await close_deal_job(chat.app.jobs, 1)
    second = await close_deal_job(chat.app.jobs, 1)
    assert len(first) == 1
    assert second == []
    assert deal_export(chat)["status"] == "failed"
    # The scheduled close that now comes due says nothing more.
    sent = len(chat.sent)
    await chat.at("2026-11-28 09:00")
    assert [t for t in chat.texts()[sent:] if "截团" in t] == []


async def test_close_deal_job_before_the_deadline_does_nothing(chat: Chat) -> None:
    await open_deal(chat)
    assert await close_deal_job(chat.app.jobs, 1) == []
    assert deal_export(chat)["status"] == "open"


async def test_the_deadline_closes_once_and_announces_once(chat: Chat) -> None:
    await open_deal(chat, "开团 山东富士苹果 39.9元/箱 2箱成团 明晚8点截团")
    await chat.say("李阿姨", "要2箱")
    await chat.at("2026-11-25 20:01")
    await chat.at("2026-11-25 23:00")
    await chat.at("2026-11-27 09:00")
    closed = [t for t in chat.texts() if "已截团" in t]
    assert len(closed) == 1
    assert "#1" in closed[0]
    assert "已成团" in closed[0]
    assert deal_export(chat)["status"] == "succeeded"


async def test_a_deal_closed_by_hand_is_not_closed_again_at_the_deadline(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", "要2箱")
    closed = await chat.say("王团长", "截团")
    assert any("已截团" in m.text for m in closed)
    sent = len(chat.sent)
    await chat.at("2026-11-26 09:00")
    assert [t for t in chat.texts()[sent:] if "截团" in t] == []
    assert deal_export(chat)["status"] == "failed"


async def test_a_failed_deal_is_failed_in_the_export_and_buyers_are_told(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", "要2箱")
    await chat.say("张姐", "跟一单")
    sent = await chat.at("2026-11-25 20:01")
    announcement = joined(sent)
    assert re.search("未成团|没成团|未达|失败", announcement)
    assert "@李阿姨" in announcement
    assert "@张姐" in announcement
    assert deal_export(chat)["status"] == "failed"


# --- cancelled deals and cancelled orders ------------------------------------------------------

async def test_a_cancelled_deal_refuses_later_orders(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", "要2箱")
    cancelled = joined(await chat.say("王团长", "取消团 供应商缺货"))
    assert "取消" in cancelled
    assert "供应商缺货" in cancelled
    assert "@李阿姨" in cancelled
    await chat.say("张姐", "跟一单")
    refused = joined(await chat.flush())
    assert "#1" in refused
    assert "@张姐" in refused
    deal = deal_export(chat)
    assert deal["status"] == "cancelled"
    assert [o["member"] for o in deal["orders"]] == ["李阿姨"]
    # Its deadline passing later announces nothing.
    sent = len(chat.sent)
    await chat.at("2026-11-26 09:00")
    assert chat.texts()[sent:] == []


async def test_a_cancelled_order_is_cancelled_in_the_export(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", "要2箱")
    await chat.say("张姐", "跟一单")
    await chat.say("李阿姨", "不要了")
    acks = joined(await chat.flush())
    assert "李阿姨" in acks
    orders = {o["member"]: o for o in deal_export(chat)["orders"]}
    assert orders["李阿姨"]["status"] == "cancelled"
    assert [line["qty"] for line in orders["李阿姨"]["lines"]] == [0]
    assert orders["张姐"]["status"] == "active"


@pytest.mark.parametrize("change", ["改成0箱", "减两箱", "减2箱"])
async def test_a_quantity_reaching_zero_cancels_the_line(chat: Chat, change: str) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", "要2箱")
    await chat.say("李阿姨", change)
    await chat.flush()
    assert chat.orders() == {}
    (order,) = deal_export(chat)["orders"]
    assert order["status"] == "cancelled"


# --- changing one's own order ------------------------------------------------------------------

async def test_set_add_and_subtract_change_ones_own_order(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", "要2箱")
    await chat.say("张姐", "要1箱")
    await chat.flush()
    await chat.say("李阿姨", "改成3箱")
    assert "3箱" in joined(await chat.flush())
    assert chat.orders()["李阿姨"] == {"山东富士苹果": 3}
    await chat.say("李阿姨", "再加一箱")
    assert "4箱" in joined(await chat.flush())
    assert chat.orders()["李阿姨"] == {"山东富士苹果": 4}
    await chat.say("李阿姨", "减两箱")
    assert "2箱" in joined(await chat.flush())
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 2}, "张姐": {"山东富士苹果": 1}}


async def test_subtracting_with_no_order_is_refused(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", "减一箱")
    acks = joined(await chat.flush())
    assert "@李阿姨" in acks
    assert chat.orders() == {}


@pytest.mark.parametrize("text", [
    "「李阿姨：要2箱」\n- - - - - - - - - - - - - - -\n改成5箱",
    "「李阿姨：要2箱」\n- - - - - - - - - - - - - - -\n取消",
    "「李阿姨：要2箱」\n- - - - - - - - - - - - - - -\n减一箱",
    "@李阿姨\u2005改成5箱",
    "@李阿姨 不要了",
    "帮李阿姨改成5箱",
    "李阿姨的改成1箱",
])
async def test_a_member_cannot_change_another_members_order(chat: Chat, text: str) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", "要2箱")
    await chat.flush()
    await chat.say("张姐", text)
    await chat.flush()
    assert chat.orders().get("李阿姨") == {"山东富士苹果": 2}
    lines = {o["member"]: o for o in deal_export(chat)["orders"]}
    assert lines["李阿姨"]["status"] == "active"


# --- leader commands and roles -----------------------------------------------------------------

@pytest.mark.parametrize("command", [
    "开团 赣南脐橙 29.9元/箱 明晚8点截团",
    "截团",
    "截团 #1",
    "取消团 #1 不想卖了",
    "延期 #1 到 周五20点",
    "改价 #1 10元",
    "补货 #1 20箱",
    "到货 #1 3号楼门口",
    "汇总 #1",
    "已付 @李阿姨",
    "核销 @李阿姨",
    "设置团长 @赵大爷",
    "取消团长 @王团长",
])
async def test_a_non_leader_is_refused_and_nothing_changes(chat: Chat, command: str) -> None:
    await open_deal(chat, LIMITED)
    await chat.say("李阿姨", "要2箱")
    await chat.flush()
    before = chat.export()
    replies = await chat.say("赵大爷", command)
    assert len(replies) == 1
    assert "@赵大爷" in replies[0].text
    assert chat.export() == before
    assert await chat.flush() == []
    # Still not a leader, and the real leader still is one.
    assert "@赵大爷" in joined(await chat.say("赵大爷", "截团"))
    assert deal_export(chat)["status"] == "open"
    await chat.say("王团长", "截团")
    assert deal_export(chat)["status"] != "open"


async def test_a_leader_appoints_and_revokes_another_leader(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("张姐", "跟一单")
    granted = joined(await chat.say("王团长", "设置团长 @张姐"))
    assert "张姐" in granted
    assert "团长" in granted
    card = joined(await chat.say("张姐", "开团 赣南脐橙 29.9元/箱 明晚8点截团"))
    assert "#2" in card
    revoked = joined(await chat.say("王团长", "取消团长 @张姐"))
    assert "张姐" in revoked
    refused = joined(await chat.say("张姐", "截团 #2"))
    assert "@张姐" in refused
    assert [d["status"] for d in chat.export()["deals"]] == ["open", "open"]


async def test_an_appointed_leader_may_appoint_in_turn(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("王团长", "设置团长 @张姐")
    await chat.say("张姐", "设置团长 @赵大爷")
    await chat.say("赵大爷", "截团")
    assert deal_export(chat)["status"] == "failed"


# --- 延期 and reminders ---------------------------------------------------------------------

async def test_extending_moves_the_close(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", "要2箱")
    moved = joined(await chat.say("王团长", "延期 #1 到 周五20点"))
    assert "#1" in moved
    assert "20:00" in moved
    await chat.flush()
    assert await chat.at("2026-11-25 20:30") == []
    assert deal_export(chat)["status"] == "open"
    assert deal_export(chat)["deadline"] == "2026-11-27T20:00:00+08:00"
    await chat.say("张姐", "跟一单")
    await chat.flush()
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 2}, "张姐": {"山东富士苹果": 1}}
    sent = len(chat.sent)
    await chat.at("2026-11-28 09:00")
    closed = [t for t in chat.texts()[sent:] if "已截团" in t]
    assert len(closed) == 1
    assert deal_export(chat)["status"] == "failed"


async def test_extending_into_the_past_is_refused(chat: Chat) -> None:
    await open_deal(chat)
    reply = joined(await chat.say("王团长", "延期 #1 到 今天早上8点"))
    assert reply
    assert deal_export(chat)["deadline"] == "2026-11-25T20:00:00+08:00"


async def test_the_reminder_is_sent_once_with_what_is_missing(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("李阿姨", "要3箱")
    await chat.say("张姐", "要2箱")
    await chat.flush()
    sent = len(chat.sent)
    await chat.at("2026-11-25 19:30")
    reminders = chat.texts()[sent:]
    assert len(reminders) == 1
    assert "还差15箱" in reminders[0]
    assert "1小时" in reminders[0]
    assert "#1" in reminders[0]
    assert await remind_deal_job(chat.app.jobs, 1) == []
    await chat.at("2026-11-25 19:59")
    assert len(chat.texts()) == sent + 1


async def test_the_reminder_comes_again_for_the_new_deadline_only(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("王团长", "延期 #1 到 周五20点")
    sent = len(chat.sent)
    await chat.at("2026-11-25 21:00")
    assert chat.texts()[sent:] == []
    await chat.at("2026-11-27 19:30")
    reminders = [t for t in chat.texts()[sent:] if "还有" in t]
    assert len(reminders) == 1
    assert "还差20箱" in reminders[0]


# --- the operations directly ------------------------------------------------------------------

def _deal_parts(session: Session) -> tuple[Deal, Item, Member, Member]:
    deal = session.get(Deal, 1)
    assert deal is not None
    (item,) = ops.deal_items(session, 1)
    a = ops.upsert_member(session, "ops:a", "甲")
    b = ops.upsert_member(session, "ops:b", "乙")
    return deal, item, a, b


async def test_change_order_keeps_the_limit_and_the_stock(chat: Chat) -> None:
    await open_deal(chat, LIMITED)
    now = chat.clock.now()
    with chat.app.sessions() as session:
        deal, item, a, b = _deal_parts(session)
        assert isinstance(ops.change_order(session, deal, item, a, Decimal(4), "add", now),
                          ops.OrderChange)
        over = ops.change_order(session, deal, item, a, Decimal(2), "add", now)
        assert isinstance(over, ops.OrderRefusal)
        assert over.reason == "limit"
        assert (over.allowed, over.already) == (Decimal(5), Decimal(4))
        assert isinstance(ops.change_order(session, deal, item, b, Decimal(5), "set", now),
                          ops.OrderChange)
        c = ops.upsert_member(session, "ops:c", "丙")
        short = ops.change_order(session, deal, item, c, Decimal(2), "add", now)
        assert isinstance(short, ops.OrderRefusal)
        assert short.reason == "stock"
        assert short.allowed == Decimal(1)
        assert ops.member_orders(session, 1, c) == []
        # Going down is always allowed, even when the stock is short.
        down = ops.change_order(session, deal, item, b, Decimal(1), "sub", now)
        assert isinstance(down, ops.OrderChange)
        assert down.after == Decimal(4)
        zero = ops.change_order(session, deal, item, a, Decimal(0), "set", now)
        assert isinstance(zero, ops.OrderChange)
        assert zero.after == 0
        (order,) = ops.member_orders(session, 1, a)
        assert order.status == "cancelled"
        assert ops.progress(session, deal).stock_left == Decimal(6)
        for bad in (Decimal(0), Decimal(-1), Decimal(1000)):
            refused = ops.change_order(session, deal, item, a, bad, "add", now)
            assert isinstance(refused, ops.OrderRefusal)
            assert refused.reason == "qty"


async def test_close_and_cancel_happen_once(chat: Chat) -> None:
    await open_deal(chat)
    now = chat.clock.now()
    with chat.app.sessions() as session:
        deal, item, a, _ = _deal_parts(session)
        ops.change_order(session, deal, item, a, Decimal(2), "add", now)
        assert ops.close_deal(session, deal, now) == "failed"
        assert ops.close_deal(session, deal, now) is None
        assert ops.cancel_deal(session, deal, now, "x") is False
        late = ops.change_order(session, deal, item, a, Decimal(1), "add", now)
        assert isinstance(late, ops.OrderRefusal)
        assert late.reason == "closed"
        session.commit()
    assert deal_export(chat)["status"] == "failed"


async def test_cancel_deal_happens_once(chat: Chat) -> None:
    await open_deal(chat)
    now = chat.clock.now()
    with chat.app.sessions() as session:
        deal, *_ = _deal_parts(session)
        assert ops.cancel_deal(session, deal, now, "缺货") is True
        assert ops.cancel_deal(session, deal, now, "缺货") is False
        assert ops.close_deal(session, deal, now) is None
        session.commit()
    assert deal_export(chat)["status"] == "cancelled"


async def test_a_deadline_moved_earlier_closes_once_at_the_new_time(chat: Chat) -> None:
    await open_deal(chat)
    await chat.say("王团长", "延期 #1 到 今晚10点")
    assert deal_export(chat)["deadline"] == "2026-11-24T22:00:00+08:00"
    await chat.at("2026-11-24 22:01")
    assert deal_export(chat)["status"] == "failed"
    await chat.at("2026-11-26 09:00")
    assert len([t for t in chat.texts() if "已截团" in t]) == 1
