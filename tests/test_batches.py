"""Group commit: messages that queue up are handled in one transaction, in order, each seeing
the ones before it; a batch that fails anywhere is rolled back and run one by one, so a
duplicate is still handled once and the others are not lost."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa
from chat import Chat
from conftest import pg_schema_url
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.dispatcher import Inbox, work_in_thread
from bot.types import IncomingMessage
from handlers.common import Speaker, read_room_state, read_room_states
from models import ops
from models.tables import Order

ROOM = "replay:room:测试群"


def _msg(chat: Chat, msg_id: str, member: str, text: str, seconds: float = 1, *,
         sender_id: str | None = None) -> IncomingMessage:
    return IncomingMessage(id=msg_id, text=text, sender_id=sender_id or f"wx-{member}",
                           sender_name=member,
                           at=chat.clock.now() + timedelta(seconds=seconds), room_id=ROOM,
                           room_name="测试群")


def _commits(chat: Chat) -> list[int]:
    """A counter of the commits on the chat's engine from now on."""
    count = [0]

    @event.listens_for(chat.app.engine, "commit")
    def _commit(_conn: object) -> None:
        count[0] += 1

    return count


async def _open_deal(chat: Chat) -> None:
    await chat.room("测试群")
    await chat.leader("王团长")
    await chat.say("王团长", "开团 阳澄湖大闸蟹 128元/盒 限量30盒 每人限购5盒 明晚8点截团")


async def test_a_batch_commits_once_and_each_message_sees_the_ones_before(db_url: str) -> None:
    chat = Chat(db_url)
    try:
        await _open_deal(chat)
        commits = _commits(chat)
        batch = [_msg(chat, "b1", "阿琴", "要2盒"), _msg(chat, "b2", "阿琴", "再加1盒"),
                 _msg(chat, "b3", "小周", "+1"), _msg(chat, "b4", "小周", "谢谢团长"),
                 _msg(chat, "b5", "阿琴", "改成4盒")]
        assert await chat.app.dispatcher.dispatch_batch(batch) == [True] * 5
        assert commits[0] == 1
        assert chat.orders() == {"阿琴": {"阳澄湖大闸蟹": 4}, "小周": {"阳澄湖大闸蟹": 1}}
        sent = await chat.flush()
        acks = "\n".join(m.text for m in sent)
        assert "阿琴" in acks
        assert "小周" in acks
    finally:
        chat.close()


async def test_a_duplicate_sends_its_batch_back_one_by_one(db_url: str) -> None:
    chat = Chat(db_url)
    try:
        await _open_deal(chat)
        assert await chat.app.dispatcher.dispatch(_msg(chat, "d1", "阿琴", "要2盒"))
        commits = _commits(chat)
        # d1 again (a redelivery) in the middle of new messages, and one message twice.
        batch = [_msg(chat, "d2", "小周", "要1盒"), _msg(chat, "d1", "阿琴", "要2盒"),
                 _msg(chat, "d3", "阿琴", "再加1盒"), _msg(chat, "d3", "阿琴", "再加1盒")]
        assert await chat.app.dispatcher.dispatch_batch(batch) == [True, False, True, False]
        assert commits[0] == 2  # the batch rolled back; d2 and d3 committed on their own
        assert chat.orders() == {"阿琴": {"阳澄湖大闸蟹": 3}, "小周": {"阳澄湖大闸蟹": 1}}
        engine = sa.create_engine(db_url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select id from processedmessage where id like 'd%'")).all()
        engine.dispose()
        assert sorted(r[0] for r in rows) == ["d1", "d2", "d3"]
    finally:
        chat.close()


async def test_the_inbox_batches_what_queues_up_in_order(db_url: str) -> None:
    chat = Chat(db_url)
    try:
        await _open_deal(chat)
        commits = _commits(chat)
        inbox = Inbox(chat.app.dispatcher, max_batch=8, in_thread=work_in_thread(chat.app.engine))
        said = [("阿琴", "要1盒"), ("小周", "+1"), ("阿琴", "改成3盒"), ("老谭", "要两盒"),
                ("阿琴", "再加1盒"), ("小周", "改成2盒")] * 1 + [
                (f"邻居{n}", "+1") for n in range(14)]
        handled = await asyncio.gather(*[inbox.submit(_msg(chat, f"i{k}", who, text, k / 100))
                                         for k, (who, text) in enumerate(said)])
        await inbox.close()
        assert handled == [True] * len(said)
        assert commits[0] == 3  # 20 messages that all queued at once: 8 + 8 + 4
        orders = chat.orders()
        # In the order said: 1, set to 3, one more: 4 (a reordering would give another total).
        assert orders["阿琴"] == {"阳澄湖大闸蟹": 4}
        assert orders["小周"] == {"阳澄湖大闸蟹": 2}
        assert len(orders) == 3 + 14
    finally:
        chat.close()


def test_deferred_records_are_written_once_before_they_are_read(db_url: str) -> None:
    chat = Chat(db_url)
    try:
        now = chat.clock.now()
        with Session(chat.app.engine) as session:
            for n in range(3):
                ops.record_message(session, ops.MessageRecord(id=f"r{n}", received_at=now,
                                                              sender_name="阿琴", body=f"要{n}盒"),
                                   [(f"room:{ROOM}", now, "{}")] if n != 1 else [], defer=True)
            ops.write_deferred(session)
            ops.write_deferred(session)  # nothing left: writes nothing twice
            got = session.connection().execute(sa.text(
                "select id, received_at from processedmessage order by id")).all()
            acks = session.connection().execute(sa.text("select count(*) from pendingack")).scalar_one()
            session.commit()
        assert [row[0] for row in got] == ["r0", "r1", "r2"]
        assert acks == 2
        with Session(chat.app.engine) as session:  # a known id fails when the rows are written
            def again() -> None:  # (SQLite writes them at once: nothing to save there)
                ops.record_message(session, ops.MessageRecord(id="r1", received_at=now), defer=True)
                ops.write_deferred(session)

            with pytest.raises(IntegrityError):
                again()
            session.rollback()
            # the connection goes on working after the error (a new cursor is made)
            ops.record_message(session, ops.MessageRecord(id="r3", received_at=now))
            session.commit()
    finally:
        chat.close()


async def test_an_order_state_read_before_another_line_came_still_keeps_the_order_active(
        db_url: str) -> None:
    """The room's state reads the speaker's order for a change; if another worker added a
    line to it meanwhile (the read missed it), setting the line read to 0 must not cancel
    the order: its status comes from the lines as they are when it is written."""
    chat = Chat(db_url)
    try:
        await chat.room("测试群")
        await chat.leader("王团长")
        await chat.say("王团长", "#开团 周末水果团\n1. 富士苹果 39.9元/箱\n"
                                 "2. 赣南脐橙 29.9元/箱\n截团：周五20:00")
        await chat.say("李阿姨", "苹果2箱")
        with chat.app.sessions() as session:
            deal = ops.open_deals(session, ops.upsert_room(session, ROOM, "测试群"))[0]
            member = ops.upsert_member(session, "replay:member:李阿姨", "李阿姨")
            apples = ops.deal_items(session, deal.id or 0)[0]
            stale = ops.order_states(session.connection().execute(ops.orders_for_change(
                member.id, Order.__table__.c.deal_id == deal.id)).all())[deal.id or 0]
            session.commit()
        await chat.say("李阿姨", "再要橙子1箱")  # the line the stale state does not know
        with chat.app.sessions() as session:
            change = ops.change_order(session, deal, apples, member, ops.ZERO, "set",
                                      chat.clock.now(), known=stale)
            assert isinstance(change, ops.OrderChange)
            session.commit()
        assert chat.orders() == {"李阿姨": {"赣南脐橙": 1}}
        engine = sa.create_engine(db_url)
        with engine.connect() as conn:
            status = conn.execute(sa.text('select status from "order"')).scalar_one()
        engine.dispose()
        assert status == "active"
    finally:
        chat.close()


async def test_messages_after_a_leader_command_in_a_batch_see_what_it_changed(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """On PostgreSQL the room states of a batch are read before its first message runs; a
    leader command in the batch (here: a second deal opened) must not leave the messages
    after it with the room as it was."""
    chat = Chat(db_url)
    try:
        await _open_deal(chat)
        batch = [_msg(chat, "l1", "阿琴", "要2盒"),
                 replace(_msg(chat, "l2", "王团长", "开团 富士苹果 39.9元/箱 明晚8点截团"),
                         sender_is_owner=True),
                 _msg(chat, "l3", "小周", "苹果1箱"),  # only in the deal opened just before
                 _msg(chat, "l4", "老谭", "大闸蟹要1盒")]
        assert await chat.app.dispatcher.dispatch_batch(batch) == [True] * 4
        assert "one by one" not in caplog.text  # the batch ran as one
        assert chat.orders(0) == {"阿琴": {"阳澄湖大闸蟹": 2}, "老谭": {"阳澄湖大闸蟹": 1}}
        assert chat.orders(1) == {"小周": {"富士苹果": 1}}
    finally:
        chat.close()


def _room_state_statements(chat: Chat) -> list[str]:
    """The room-state reads on the chat's engine from now on (both forms, by their text)."""
    seen: list[str] = []

    @event.listens_for(chat.app.engine, "before_cursor_execute")
    def _stmt(_conn: object, _cursor: object, sql: str, *_: object) -> None:
        if "pendingquestion" in sql and "leaderrole" in sql:
            seen.append(sql)

    return seen


async def test_a_batch_of_new_speakers_reads_their_room_states_in_one_statement() -> None:
    """PostgreSQL: one statement upserts the members a batch brings and reads every first
    speaker's room state; a second message of the same speaker reads its own when it runs."""
    with pg_schema_url() as url:
        chat = Chat(url)
        try:
            await _open_deal(chat)
            reads = _room_state_statements(chat)
            batch = [_msg(chat, "n1", "阿琴", "要2盒"), _msg(chat, "n2", "小周", "+1"),
                     _msg(chat, "n3", "老谭", "要3盒"), _msg(chat, "n4", "阿琴", "再加1盒")]
            assert await chat.app.dispatcher.dispatch_batch(batch) == [True] * 4
            assert len(reads) == 2  # the batch's three first speakers, then 阿琴's second
            assert chat.orders() == {"阿琴": {"阳澄湖大闸蟹": 3}, "小周": {"阳澄湖大闸蟹": 1},
                                     "老谭": {"阳澄湖大闸蟹": 3}}
        finally:
            chat.close()


async def test_room_states_read_together_equal_those_read_one_by_one() -> None:
    """``read_room_states`` (PostgreSQL, one statement for several speakers) gives each
    speaker what ``read_room_state`` gives: open and recently closed deals, their question,
    their role, and their own orders with every line (not those placed for others)."""
    with pg_schema_url() as url:
        chat = Chat(url)
        try:
            await chat.room("测试群")
            await chat.leader("王团长")
            await chat.say("王团长", "开团 阳澄湖大闸蟹 128元/盒 明晚8点截团")
            await chat.say("阿琴", "要2盒")
            await chat.say("王团长", "截团")
            await chat.say("王团长", "#开团 周末水果团\n1. 富士苹果 39.9元/箱\n"
                                     "2. 赣南脐橙 29.9元/箱\n截团：周五20:00")
            await chat.say("王团长", "开团 东北大米 59元/袋 明晚8点截团")
            await chat.say("阿琴", "苹果2箱")
            await chat.say("阿琴", "橙子1箱")
            await chat.say("阿琴", "代王阿姨 苹果1箱")
            await chat.say("小周", "+1")  # two open deals: asked which one
            await chat.say("老谭", "大米1袋")
            await chat.say("王团长", "设为团长 @老谭")
            names = ["阿琴", "小周", "老谭", "王团长"]
            with chat.app.sessions() as session:
                room = ops.upsert_room(session, ROOM, "测试群")
                members = [ops.upsert_member(session, f"replay:member:{n}", n) for n in names]
                one_by_one = [read_room_state(session, room.id or 0, m.id or 0, chat.clock.now())
                              for m in members]
                session.rollback()
            # what there is to read: 阿琴's order with two lines (the one placed for 王阿姨
            # is not hers to change), 小周's question, 老谭's role, the deal closed today
            assert sorted(len(s.lines) for s in one_by_one[0].own_orders.values()) == [0, 2]
            assert one_by_one[1].question
            assert one_by_one[2].appointed
            assert len(one_by_one[0].closed_ids) == 1
            with chat.app.sessions() as session:
                speakers = [Speaker(room.id or 0, m.platform_id, m.name, m.id, chat.clock.now())
                            for m in members]
                renamed = Speaker(room.id or 0, members[1].platform_id, "周周", None,
                                  chat.clock.now())
                newcomer = Speaker(room.id or 0, "wx-新邻居", "新邻居", None, chat.clock.now())
                together = read_room_states(session, [*speakers, renamed, newcomer])
                assert [state for *_, state in together[:4]] == one_by_one
                assert [(member_id, name) for member_id, name, _ in together[:4]] == [
                    (m.id, None) for m in members]  # known: their row's name is not read
                # found by platform id, under the name the row has
                assert together[4] == (members[1].id, "小周", one_by_one[1])
                new_id, new_name, new_state = together[5]
                assert new_name == "新邻居"
                assert new_id not in {m.id for m in members}
                assert new_state.own_orders == {deal_id: ops.OrderState()
                                                for deal_id in one_by_one[0].open_ids}
                assert new_state.open_ids == one_by_one[0].open_ids
                # nothing another message could see has changed: no rename, no presence
                assert ops.find_member_in_room(session, room, "小周") == members[1]
                assert ops.find_member_in_room(session, room, "周周") is None
                assert ops.find_member_in_room(session, room, "新邻居") is None
                # for the batch's first message (``at_once``) both are written at once
                arrived = Speaker(room.id or 0, "wx-新邻居2", "新邻居2", None, chat.clock.now(),
                                  at_once=True)
                read_room_states(session, [replace(renamed, at_once=True), arrived])
                found = ops.find_member_in_room(session, room, "周周")
                assert found is not None
                assert found.id == members[1].id
                assert ops.find_member_in_room(session, room, "新邻居2") is not None
                session.commit()
        finally:
            chat.close()


@pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "batched"])
async def test_a_member_named_in_a_batch_is_seen_as_they_were_at_that_message(
        db_url: str, batched: bool) -> None:
    """A speaker's rename and first presence in the room take effect at their own message,
    also when their state was read ahead with the batch's (PostgreSQL): a message before it
    that names them finds them under their old name, one after it under the new one."""
    chat = Chat(db_url)
    try:
        await _open_deal(chat)
        for msg in [_msg(chat, "s1", "阿琴", "要2盒"), _msg(chat, "s2", "小周", "要1盒")]:
            assert await chat.app.dispatcher.dispatch(msg)
        msgs = [_msg(chat, "r1", "阿琴", "小周那单改成5盒", 2),  # 小周's order: not hers
                _msg(chat, "r2", "周周", "谢谢团长", 3, sender_id="wx-小周"),  # 小周 renamed
                _msg(chat, "r3", "老谭", "周周那单改成4盒", 4),  # found under the new name
                _msg(chat, "r4", "小马", "谢谢", 5),  # first seen in the room here
                _msg(chat, "r5", "阿琴", "小马那单取消", 6)]  # 小马 is in the room now
        if batched:
            assert await chat.app.dispatcher.dispatch_batch(msgs) == [True] * 5
        else:
            for msg in msgs:
                assert await chat.app.dispatcher.dispatch(msg)
        assert chat.orders() == {"阿琴": {"阳澄湖大闸蟹": 2}, "周周": {"阳澄湖大闸蟹": 1}}
        with chat.app.sessions() as session:
            room = ops.upsert_room(session, ROOM, "测试群")
            assert ops.find_member_in_room(session, room, "小周") is None
            assert ops.find_member_in_room(session, room, "周周") is not None
            assert ops.find_member_in_room(session, room, "小马") is not None
    finally:
        chat.close()


@pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "batched"])
async def test_a_member_renamed_twice_in_a_batch_keeps_the_last_name(
        db_url: str, batched: bool) -> None:
    """The second rename runs as the message does; the first, put off until its message's
    turn (PostgreSQL, read ahead), must be written before it and not after."""
    chat = Chat(db_url)
    try:
        await _open_deal(chat)
        assert await chat.app.dispatcher.dispatch(_msg(chat, "t0", "小周", "要1盒"))
        msgs = [_msg(chat, "t1", "阿琴", "谢谢", 2),
                _msg(chat, "t2", "周周", "谢谢", 3, sender_id="wx-小周"),
                _msg(chat, "t3", "阿周", "谢谢", 4, sender_id="wx-小周")]
        if batched:
            assert await chat.app.dispatcher.dispatch_batch(msgs) == [True] * 3
        else:
            for msg in msgs:
                assert await chat.app.dispatcher.dispatch(msg)
        assert chat.orders() == {"阿周": {"阳澄湖大闸蟹": 1}}
    finally:
        chat.close()
