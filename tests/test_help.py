"""帮助 / 怎么用: the commands for the asker's role, and nothing recorded."""

from __future__ import annotations

import pytest
from chat import Chat

from handlers.parsing.order import is_help_request


@pytest.mark.parametrize("text", ["帮助", "怎么用", "怎么用？", "使用说明", "怎么下单呀", "help"])
def test_help_requests_are_recognised(text: str) -> None:
    assert is_help_request(text)


@pytest.mark.parametrize("text", ["帮我带两斤", "帮助王阿姨订一份", "这个怎么用法", "帮忙看看进度",
                                  "跟一单", "怎么用都行 我要两箱"])
def test_orders_and_chatter_are_not_help(text: str) -> None:
    assert not is_help_request(text)


async def test_a_member_gets_the_member_commands(chat: Chat) -> None:
    [reply] = await chat.say("张三", "帮助")
    assert "我的订单" in reply.text
    assert "跟一单" in reply.text
    assert "开团" not in reply.text.split("\n", 1)[1].split("团长可以")[0]
    assert "截团 #N" not in reply.text
    assert reply.room_name == "测试群"


async def test_a_leader_gets_the_leader_commands_too(chat: Chat) -> None:
    [reply] = await chat.say("王团长", "@团购助手 怎么用")
    assert "截团 #N" in reply.text
    assert "到货 #N" in reply.text
    assert "跟一单" in reply.text


async def test_help_in_private_answers_privately_and_records_nothing(chat: Chat) -> None:
    [reply] = await chat.say("张三", "帮助", private=True)
    assert reply.to_name == "张三"
    assert reply.room_id is None
    assert chat.export()["deals"] == []
