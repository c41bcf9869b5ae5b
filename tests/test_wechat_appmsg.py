"""The WeChat adapter's readers of app-message XML (native 接龙, quote-replies) and its config
checks, without a service. (Not ``test_wechat.py``: tests/parsing/test_wechat.py has that
basename, and test modules without packages must have unique basenames.)"""

from __future__ import annotations

from dataclasses import replace

import pytest
from puppet.appmsg import jielong_xml, quote_xml

from bot.adapters.wechat import WechatyAdapter, quote_text, read_solitaire, solitaire_text
from bot.config import Settings

QUOTE_RULE = "- - - - - - - - - - - - - - -"


def test_read_solitaire_real_shape() -> None:
    # The shape WeChat sends: "#接龙" inside the first title line, an emoji (two UTF-16
    # units) in the header, a line written over two lines; ranges count UTF-16 units.
    title = ("@团长  打卡#接龙\n\n周末水果团 加油💪🏻\n例 名字 数量\n\n"
             "1. 小雨 2盒\n多放冰袋\n2. 阿杰 1盒")
    xml = jielong_xml(title, ["wxid_a", "wxid_b"], sender_id="wxid_b", creator_id="wxid_a")
    sol = read_solitaire(xml)
    assert sol is not None
    assert sol.header == ("打卡", "周末水果团 加油💪🏻", "例 名字 数量")
    assert [(e.no, e.text, e.author_id) for e in sol.entries] == [
        (1, "小雨 2盒 多放冰袋", "wxid_a"), (2, "阿杰 1盒", "wxid_b")]
    assert sol.creator_id == "wxid_a"
    assert solitaire_text(sol, {"wxid_a": "小雨"}.get).endswith("\n\n1. 小雨 2盒 多放冰袋\n2. 阿杰 1盒")
    # Without <solitaire_info> ranges the title alone is read, the same way.
    bare = read_solitaire(jielong_xml(title, [], sender_id="x", creator_id="x", with_ranges=False))
    assert bare is not None
    assert [e.text for e in bare.entries] == ["小雨 2盒 多放冰袋", "阿杰 1盒"]
    assert read_solitaire("<msg><appmsg><type>5</type><title>x</title></appmsg></msg>") is None
    assert read_solitaire("我要2箱 <3") is None


def test_quote_text_reads_refermsg() -> None:
    xml = quote_xml("我也要两箱", quoted_name="张三", quoted_text="跟一单", quoted_sender_id="w1")
    assert quote_text(xml) == f"「张三：跟一单」\n{QUOTE_RULE}\n我也要两箱"
    assert quote_text("wxid_9:\n" + xml) == quote_text(xml)


async def test_adapter_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        WechatyAdapter(Settings())
    with pytest.raises(ValueError, match="tls"):
        WechatyAdapter(replace(Settings(), wechaty_endpoint="127.0.0.1:1", wechaty_tls=True))
