"""config.toml: defaults, overrides, and leaders named per room."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat import Chat

from bot.config import Settings, load_settings


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUANGOU_DATABASE_URL", raising=False)
    settings = load_settings(tmp_path / "missing.toml")
    assert settings == Settings()
    assert settings.tz.key == "Asia/Shanghai"


def test_the_file_and_the_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[bot]\ntimezone = "Asia/Tokyo"\nack_window_seconds = 3\n'
                    '[limits]\nmax_qty_per_line = 50\n'
                    '[leaders]\n"幸福里" = ["张姐", "王团长"]\n', "utf-8")
    monkeypatch.setenv("TUANGOU_DATABASE_URL", "sqlite:///elsewhere.db")
    settings = load_settings(path)
    assert (settings.timezone, settings.ack_window_seconds, settings.max_qty_per_line) == (
        "Asia/Tokyo", 3.0, 50)
    assert settings.leaders == {"幸福里": ("张姐", "王团长")}
    assert settings.database_url == "sqlite:///elsewhere.db"


def test_an_unknown_time_zone_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[bot]\ntimezone = "Mars/Olympus"\n', "utf-8")
    with pytest.raises(ValueError, match="Mars"):
        load_settings(path)


async def test_a_leader_named_in_config_may_open_a_deal_and_others_may_not(db_url: str) -> None:
    chat = Chat(db_url, settings=Settings(leaders={"幸福里": ("张姐",)}))
    try:
        await chat.room("幸福里")
        refused = await chat.say("李四", "开团 土鸡蛋 30元/板 明晚8点截团")
        assert len(refused) == 1
        assert "团长" in refused[0].text
        card = await chat.say("张姐", "开团 土鸡蛋 30元/板 明晚8点截团")
        assert "#1 土鸡蛋" in card[0].text
        assert [d["leader"] for d in chat.export()["deals"]] == ["张姐"]
    finally:
        chat.close()


async def test_a_past_deadline_is_refused_and_nothing_is_created(chat: Chat) -> None:
    replies = await chat.say("王团长", "开团 土鸡蛋 30元/板 今天早上8点截团")
    assert len(replies) == 1
    assert "已经过了" in replies[0].text
    assert chat.export()["deals"] == []


def test_transport_pacing_and_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUANGOU_WECHATY_TOKEN", raising=False)
    path = tmp_path / "config.toml"
    path.write_text('[playground]\nport = 0\n[pacing]\nroom_interval_seconds = 5\n'
                    'account_per_minute = 12\n[modes]\ndefault = "shadow"\n"幸福里" = "live"\n', "utf-8")
    settings = load_settings(path)
    assert (settings.playground_port, settings.room_interval_seconds, settings.account_per_minute) == (
        0, 5.0, 12)
    assert (settings.mode_of("幸福里"), settings.mode_of("别的群"), settings.mode_of(None)) == (
        "live", "shadow", "live")
    assert settings.transport_kind == "playground"
    monkeypatch.setenv("TUANGOU_WECHATY_TOKEN", "puppet_token")
    assert load_settings(path).transport_kind == "wechaty"


@pytest.mark.parametrize(("toml", "named"), [
    ('[modes]\n"幸福里" = "loud"\n', "loud"),
    ('[bot]\ntransport = "telegram"\n', "telegram"),
])
def test_an_unknown_mode_or_transport_is_refused(tmp_path: Path, toml: str, named: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml, "utf-8")
    with pytest.raises(ValueError, match=named):
        load_settings(path)
