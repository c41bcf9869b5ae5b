"""The `tuangou` command: replay, export, run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from bot.config import Settings, load_settings

if TYPE_CHECKING:
    from bot.adapters.base import ChatAdapter
    from bot.runtime import LiveRuntime

EXIT_USAGE = 2


def _fail(message: str) -> int:
    print(f"tuangou: {message}", file=sys.stderr)
    return EXIT_USAGE


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from bot.adapters.replay import TranscriptError, replay_text

    path = Path(args.file)
    if not path.is_file():
        return _fail(f"{path}: no such transcript")
    try:
        asyncio.run(replay_text(path.read_text("utf-8"), settings, args.db or "sqlite://"))
    except TranscriptError as exc:
        return _fail(f"{path}: {exc}")
    except UnicodeDecodeError:
        return _fail(f"{path}: not UTF-8 text")
    return 0


@contextmanager
def _database(url: str) -> Iterator[Engine]:
    """An engine on a database brought to the newest schema, disposed afterwards."""
    from models.db import create_schema, make_engine

    engine = make_engine(url)
    try:
        create_schema(engine)
        yield engine
    finally:
        engine.dispose()


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from bot.export import export_deals, to_csv, to_xlsx
    from models.db import session_factory

    with _database(args.db or settings.database_url) as engine, session_factory(engine)() as session:
        data = export_deals(session, settings, args.deal)
    if args.deal is not None and not data["deals"]:
        return _fail(f"no deal #{args.deal}")
    if args.format == "xlsx":
        if not args.output:
            return _fail("xlsx needs -o FILE")
        Path(args.output).write_bytes(to_xlsx(data))
        return 0
    text = json.dumps(data, ensure_ascii=False, indent=2) if args.format == "json" else to_csv(data)
    if args.output:
        Path(args.output).write_text(text + ("\n" if args.format == "json" else ""), "utf-8")
    else:
        sys.stdout.write(text + ("\n" if args.format == "json" else ""))
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the bot live until Ctrl-C (or SIGTERM): on real WeChat through a wechaty puppet
    when one is configured, else in the browser playground."""
    overrides: dict[str, Any] = {}
    if args.db:
        overrides["database_url"] = args.db
    if args.host:
        overrides["playground_host"] = args.host
    if args.port is not None:
        overrides["playground_port"] = args.port
    settings = dataclasses.replace(settings, **overrides)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("bot").setLevel(logging.INFO)
    return asyncio.run(_run_live(settings))


def deal_panel_provider(runtime: LiveRuntime, limit: int = 10) -> Callable[[], dict[str, Any]]:
    """The playground panel's data: the open (and succeeded) deals, newest ``limit``, in the
    export JSON shape."""
    from bot.export import export_deals
    from models import ops

    def provide() -> dict[str, Any]:
        with runtime.app.sessions() as session:
            deals = [shown for deal in ops.live_deals(session, limit)
                     for shown in export_deals(session, runtime.settings, deal.id)["deals"]]
        return {"deals": deals}

    return provide


async def _run_live(settings: Settings) -> int:
    from bot.runtime import LiveRuntime

    adapter: ChatAdapter
    if settings.transport_kind == "wechaty":
        from bot.adapters.wechat import WechatyAdapter

        adapter = WechatyAdapter(settings)
        runtime = LiveRuntime(settings, adapter)
    else:
        from bot.adapters.playground import PlaygroundAdapter

        playground = PlaygroundAdapter(settings)
        adapter = playground
        runtime = LiveRuntime(settings, adapter)
        playground.set_state_provider(deal_panel_provider(runtime))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await runtime.start()
        except OSError as exc:
            where = (f"{settings.playground_host}:{settings.playground_port}"
                     if settings.transport_kind == "playground" else settings.wechaty_endpoint)
            print(f"tuangou: cannot start on {where}: {exc}", file=sys.stderr)
            return 1
        if settings.transport_kind == "playground":
            print(f"tuangou: playground on {playground.url} (Ctrl-C stops)", flush=True)
        else:
            print(f"tuangou: connected to WeChat through {settings.wechaty_endpoint or 'the puppet'}"
                  " (Ctrl-C stops)", flush=True)
        await stop.wait()
    finally:
        await runtime.stop()
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return 0


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    """Bring the configured database to the newest schema."""
    with _database(args.db or settings.database_url) as engine:
        pass
    print(f"tuangou: {engine.url.render_as_string(hide_password=True)} is at the newest schema")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tuangou", description="Community group-buy bot")
    parser.add_argument("--config", type=Path, help="config.toml (default ./config.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("replay", help="run a transcript through the bot and print its messages")
    p.add_argument("file")
    p.add_argument("--db", help="database URL (default: a fresh in-memory database)")
    p.set_defaults(func=cmd_replay)
    p = sub.add_parser("export", help="export deals and orders")
    p.add_argument("--db", help="database URL (default: config.toml's)")
    p.add_argument("--deal", type=int)
    p.add_argument("--format", choices=["json", "csv", "xlsx"], required=True)
    p.add_argument("-o", "--output")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("db", help="database maintenance")
    db_sub = p.add_subparsers(dest="db_command", required=True)
    p = db_sub.add_parser("upgrade", help="apply the migrations (creates the schema if new)")
    p.add_argument("--db", help="database URL (default: config.toml's)")
    p.set_defaults(func=cmd_db_upgrade)
    p = sub.add_parser("run", help="run the bot (the browser playground unless a WeChat puppet is set)")
    p.add_argument("--db", help="database URL (default: config.toml's)")
    p.add_argument("--host", help="playground address to listen on (default: config.toml's)")
    p.add_argument("--port", type=int, help="playground port (0: any free port; default: config.toml's)")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except (OSError, ValueError) as exc:
        return _fail(f"config: {exc}")
    try:
        return int(args.func(args, settings))
    except BrokenPipeError:  # "tuangou replay x.txt | head": the reader has gone, stop quietly
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
