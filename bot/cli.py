"""The `tuangou` command: replay, export, run."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import Engine

from bot.config import Settings, load_settings

EXIT_USAGE = 2
DEMO = Path(__file__).resolve().parent.parent / "demo" / "demo.txt"


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
    """Until the live transports exist, `run` replays the shipped demo conversation."""
    from bot.adapters.replay import replay_text

    print(f"tuangou: replaying the demo conversation {DEMO.name} (bot messages below)\n")
    asyncio.run(replay_text(DEMO.read_text("utf-8"), settings, args.db or "sqlite://"))
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
    p = sub.add_parser("run", help="run the bot")
    p.add_argument("--db", help="database URL")
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
