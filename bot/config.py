"""Settings from config.toml (tomllib), with defaults that run the bot out of the box."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class Settings:
    """Everything configurable; built once and passed to whoever needs it."""

    bot_name: str = "团购助手"
    timezone: str = "Asia/Shanghai"
    database_url: str = "sqlite:///tuangou.db"
    transport: str = "playground"
    ack_window_seconds: float = 10.0
    remind_before_minutes: int = 60
    max_qty_per_line: int = 999
    mention_batch: int = 20
    clarify_timeout_minutes: int = 30
    # room name -> leader display names (besides the room owner and appointed leaders)
    leaders: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def load_settings(path: Path | None = None) -> Settings:
    """Read config.toml; a missing file gives the defaults.

    The file is looked up as given, else ``$TUANGOU_CONFIG``, else ``./config.toml``.
    ``$TUANGOU_DATABASE_URL`` overrides the database URL.
    """
    if path is None:
        env = os.environ.get("TUANGOU_CONFIG")
        path = Path(env) if env else Path("config.toml")
    data: dict = {}
    if path.exists():
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    bot = data.get("bot", {})
    limits = data.get("limits", {})
    leaders = {room: tuple(names) for room, names in data.get("leaders", {}).items()}
    kwargs = {
        "bot_name": bot.get("name", Settings.bot_name),
        "timezone": bot.get("timezone", Settings.timezone),
        "database_url": os.environ.get("TUANGOU_DATABASE_URL",
                                       bot.get("database_url", Settings.database_url)),
        "transport": bot.get("transport", Settings.transport),
        "ack_window_seconds": float(bot.get("ack_window_seconds", Settings.ack_window_seconds)),
        "remind_before_minutes": int(bot.get("remind_before_minutes",
                                             Settings.remind_before_minutes)),
        "max_qty_per_line": int(limits.get("max_qty_per_line", Settings.max_qty_per_line)),
        "mention_batch": int(limits.get("mention_batch", Settings.mention_batch)),
        "clarify_timeout_minutes": int(limits.get("clarify_timeout_minutes",
                                                  Settings.clarify_timeout_minutes)),
        "leaders": leaders,
    }
    settings = Settings(**kwargs)
    try:
        settings.tz  # noqa: B018  (fail at start, not at the first message)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {settings.timezone!r}") from exc
    return settings
