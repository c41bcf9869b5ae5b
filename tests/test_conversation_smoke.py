"""A first conversation test, in the style the others follow."""

from chat import Chat


async def test_follow_ups_are_acknowledged_in_one_message(chat: Chat) -> None:
    card = await chat.say("王团长", "开团 山东富士苹果 39.9元/箱 20箱成团 明晚8点截团")
    assert len(card) == 1
    assert "#1" in card[0].text
    assert "39.9" in card[0].text
    assert await chat.say("李阿姨", "跟一单") == []
    await chat.say("张姐", "我要2箱")
    acks = await chat.flush()
    assert len(acks) == 1
    assert "李阿姨 1箱" in acks[0].text
    assert "张姐 2箱" in acks[0].text
    assert chat.orders() == {"李阿姨": {"山东富士苹果": 1}, "张姐": {"山东富士苹果": 2}}
