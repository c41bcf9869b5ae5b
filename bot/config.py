"""Settings from config.toml (tomllib), with defaults that run the bot out of the box."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MODES = ("live", "shadow", "observe")


@dataclass(frozen=True)
class Settings:
    """Everything configurable; built once and passed to whoever needs it."""

    bot_name: str = "团购助手"
    timezone: str = "Asia/Shanghai"
    database_url: str = "sqlite:///tuangou.db"
    # "auto" picks wechaty when a puppet token is configured, else the playground
    transport: str = "auto"
    ack_window_seconds: float = 10.0
    # messages that queued up while others were handled go in one transaction, this many
    # at most (a burst costs the database much less; each waits for its batch's commit)
    batch_messages: int = 8
    remind_before_minutes: int = 60
    max_qty_per_line: int = 999
    mention_batch: int = 20
    clarify_timeout_minutes: int = 30
    # room name -> leader display names (besides the room owner and appointed leaders)
    leaders: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # [playground]: the browser chat simulator (port 0 = any free port)
    playground_host: str = "127.0.0.1"
    playground_port: int = 8080
    # [wechaty]: the puppet service that logs in a real WeChat account
    wechaty_endpoint: str = ""
    wechaty_token: str = ""
    wechaty_tls: bool = False
    # [pacing]: how fast the bot may post (WeChat restricts accounts that post in bursts)
    room_interval_seconds: float = 3.0
    account_per_minute: int = 20
    send_retries: int = 5
    retry_base_seconds: float = 1.0
    # acks claimed for sending but not confirmed sent this long after (the process died)
    # are sent again by another worker or the next start
    ack_lease_seconds: float = 120.0
    # [modes]: live (posts in the group), shadow (posts privately to the room's leaders)
    # or observe (records only); per room name, with a default
    default_mode: str = "live"
    modes: dict[str, str] = field(default_factory=dict)

    @property
    def transport_kind(self) -> str:
        """The transport ``tuangou run`` starts: playground or wechaty."""
        if self.transport != "auto":
            return self.transport
        return "wechaty" if self.wechaty_token else "playground"

    def mode_of(self, room_name: str | None) -> str:
        """The posting mode of a room (private chats are always live)."""
        if not room_name:
            return "live"
        return self.modes.get(room_name, self.default_mode)

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
    playground = data.get("playground", {})
    wechaty = data.get("wechaty", {})
    pacing = data.get("pacing", {})
    modes = dict(data.get("modes", {}))
    default_mode = str(modes.pop("default", Settings.default_mode))
    kwargs = {
        "bot_name": bot.get("name", Settings.bot_name),
        "timezone": bot.get("timezone", Settings.timezone),
        "database_url": os.environ.get("TUANGOU_DATABASE_URL",
                                       bot.get("database_url", Settings.database_url)),
        "transport": bot.get("transport", Settings.transport),
        "ack_window_seconds": float(bot.get("ack_window_seconds", Settings.ack_window_seconds)),
        "batch_messages": int(bot.get("batch_messages", Settings.batch_messages)),
        "remind_before_minutes": int(bot.get("remind_before_minutes",
                                             Settings.remind_before_minutes)),
        "max_qty_per_line": int(limits.get("max_qty_per_line", Settings.max_qty_per_line)),
        "mention_batch": int(limits.get("mention_batch", Settings.mention_batch)),
        "clarify_timeout_minutes": int(limits.get("clarify_timeout_minutes",
                                                  Settings.clarify_timeout_minutes)),
        "leaders": leaders,
        "playground_host": str(playground.get("host", Settings.playground_host)),
        "playground_port": int(playground.get("port", Settings.playground_port)),
        "wechaty_endpoint": str(wechaty.get("endpoint", Settings.wechaty_endpoint)),
        "wechaty_token": os.environ.get("TUANGOU_WECHATY_TOKEN",
                                        str(wechaty.get("token", Settings.wechaty_token))),
        "wechaty_tls": bool(wechaty.get("tls", Settings.wechaty_tls)),
        "room_interval_seconds": float(pacing.get("room_interval_seconds",
                                                  Settings.room_interval_seconds)),
        "account_per_minute": int(pacing.get("account_per_minute", Settings.account_per_minute)),
        "send_retries": int(pacing.get("send_retries", Settings.send_retries)),
        "retry_base_seconds": float(pacing.get("retry_base_seconds", Settings.retry_base_seconds)),
        "ack_lease_seconds": float(pacing.get("ack_lease_seconds", Settings.ack_lease_seconds)),
        "default_mode": default_mode,
        "modes": {str(room): str(mode) for room, mode in modes.items()},
    }
    settings = Settings(**kwargs)
    try:
        settings.tz  # noqa: B018  (fail at start, not at the first message)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {settings.timezone!r}") from exc
    for room, mode in [("default", settings.default_mode), *settings.modes.items()]:
        if mode not in MODES:
            raise ValueError(f"[modes] {room}: {mode!r} is not one of {', '.join(MODES)}")
    if settings.transport not in ("auto", "playground", "wechaty"):
        raise ValueError(f"[bot] transport: {settings.transport!r} is not auto, playground or wechaty")
    return settings
