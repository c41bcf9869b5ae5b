"""Names keep the script they were written in; parsing reads one canonical form."""

from __future__ import annotations

from chat import Chat


async def test_a_traditional_deal_keeps_its_name_and_takes_orders_in_either_script(chat: Chat) -> None:
    [card] = await chat.say("王团长", "開團 台灣鳳梨酥 88元/盒 明晚8點截團 8棟門口自提")
    assert "台灣鳳梨酥" in card.text
    assert "8棟門口" in card.text
    await chat.say("陳太", "鳳梨酥兩盒")
    await chat.say("小李", "凤梨酥要一盒")
    deal = chat.export()["deals"][0]
    assert deal["title"] == "台灣鳳梨酥"
    assert chat.orders() == {"陳太": {"台灣鳳梨酥": 2}, "小李": {"台灣鳳梨酥": 1}}


async def test_a_jielong_line_starting_with_a_longer_name_keeps_it_in_the_note(chat: Chat) -> None:
    await chat.say("王团长", "开团 黏豆包 20元/袋 明晚8点截团")
    await chat.say("阿珠", "#接龙\n黏豆包 20元/袋\n\n1. 阿珠妈 两袋")
    await chat.say("小周", "#接龙\n黏豆包 20元/袋\n\n1. 阿珠妈 两袋\n2. 小周 3袋")
    orders = {o["member"]: o for o in chat.export()["deals"][0]["orders"]}
    assert orders["阿珠"]["note"] == "阿珠妈"
    assert orders["小周"]["note"] in (None, "")  # the sender's own name is not a note
    assert chat.orders() == {"阿珠": {"黏豆包": 2}, "小周": {"黏豆包": 3}}
