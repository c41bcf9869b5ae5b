"""A fake wechaty puppet service for end-to-end tests of the WeChat transport.

The real python-wechaty SDK talks gRPC to ``FakePuppetService`` (a grpclib server on
127.0.0.1, free port); nothing of the SDK is mocked. A test drives it through
``PuppetDriver``::

    from puppet import fake_puppet

    async def test_two_orders(tmp_path):
        async with fake_puppet() as wx:                   # server up, SDK caches reset
            wx.login("团购助手")                            # the bot's account (login event)
            room = wx.add_room("幸福里3期", ["张三", "李四"], owner="王团长")
            async with wx.adapter() as bot:                # WechatyAdapter, started
                wx.say(room, "王团长", "开团 苹果 39.9元/箱")  # message event + payload
                wx.say(room, "张三", "@李四\u2005跟一单", mention=["李四"])
                msgs = await bot.wait_received(2)          # IncomingMessage objects
                assert msgs[1].mentioned == ((wx.contact("李四").id, "李四"),)
            assert wx.sent == []                           # no app: nothing was answered

Driver (``tests/puppet/driver.py``):

* people and rooms: ``add_contact(name, id=, alias=)``, ``contact(name|id)`` (a new name
  makes a contact), ``add_room(topic, members, owner=, aliases={name: 群昵称})``,
  ``room(topic|id)``, ``add_member(room, who, alias=)``. Rooms and people may be given as
  objects, ids or names everywhere.
* events: ``login(name)``, ``bot_joins(room)`` (room-join with the bot as invitee),
  ``say(room|None, who, text, msg_id=, at=, mention=[...])`` (``None``: private to the bot;
  ``at`` becomes the payload timestamp), ``say_jielong(room, who, title, authors=)`` (a
  native 接龙, app message type 53, built by ``appmsg.jielong_xml``), ``say_quote(...)``
  (type 57), ``say_xml(...)``. Events queue up while no stream is open.
* ``drop_stream(redeliver=N, error=False)`` ends the Event stream (cleanly, or with
  UNAVAILABLE); the SDK's stream loop returns, the adapter reconnects and the new stream
  starts with login, the last N message events again, then what was not delivered yet.
  ``wait_streams(n)`` waits for the n-th stream.
* what the bot did: ``sent`` (``Sent``: id, conversation_id, text, mention_ids, room_id,
  to_id), ``wait_sent(n)``; ``service.calls`` counts gRPC calls by method,
  ``service.payload_requests`` MessagePayload calls by message id.
* ``settings(base, **changes)`` gives Settings pointing at the service; ``adapter(settings,
  on_message, **adapter_options)`` is an async context manager yielding a ``RunningAdapter``
  (``.adapter``, ``.received``, ``.calls`` per message id, ``wait_received(n)``,
  ``outcome(msg_id)`` → "dispatched" / "ignored:WHY" / "failed"). With
  ``fake_puppet(echo_sent=True)`` the bot's own sends come back as message events.

``replay.replay_through_puppet(raw, settings, db_url, driver)`` plays a transcript through
all of it on the replay's virtual clock; ``replay.plain_replay`` is ``tuangou replay``.

Wire facts: text messages carry the puppet type 7 (the SDK remaps it), 接龙 the type 10
(GroupNote); event payloads are camelCase JSON; MessageSendText's mention field is
``mentonal_ids``. Not implemented (UNIMPLEMENTED): files, images, friendship, tags.
"""

from .driver import PuppetDriver, RunningAdapter, fake_puppet
from .service import FakeContact, FakePuppetService, FakeRoom, Sent

__all__ = ["FakeContact", "FakePuppetService", "FakeRoom", "PuppetDriver", "RunningAdapter", "Sent",
           "fake_puppet"]
