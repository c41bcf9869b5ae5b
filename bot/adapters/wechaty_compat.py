"""Import python-wechaty on Python 3.11, and the few SDK workarounds the adapter needs.

The pinned SDK set (pyproject extra ``wechat``: wechaty 0.10.7, wechaty-puppet 0.4.23,
wechaty-puppet-service 0.8.10, wechaty-grpc 0.20.19) was written for Python 3.7-3.9 and for
the pyee / urllib3 of its time. Importing it here, and only here, applies each shim first;
every shim says what breaks without it. Nothing outside ``bot/adapters/`` imports the SDK:
everything else talks to ``bot.adapters.wechat.WechatyAdapter``.

Use :func:`load` (it imports once and returns the SDK namespace), never ``import wechaty``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

# The puppet types of the wechaty-puppet protocol (what a puppet service puts on the wire
# in MessagePayloadResponse.type) before the SDK remaps them to wechaty-grpc's enum.
WIRE_TEXT = 7  # Text(1)
WIRE_GROUP_NOTE = 10  # GroupNote(53): WeChat's 接龙; the SDK maps it to UNSPECIFIED

_lock = threading.Lock()
_sdk: Sdk | None = None


@dataclass(frozen=True)
class Sdk:
    """The SDK names the adapter uses, imported once with the shims applied."""

    Wechaty: Any
    WechatyOptions: Any
    PuppetOptions: Any
    MessageType: Any  # wechaty-grpc's enum, what Message.type() returns after the remap
    Contact: Any
    ContactSelf: Any
    Room: Any
    Tag: Any
    AsyncIOScheduler: Any
    puppet_service_module: ModuleType
    single_id_container: Any


def _cache_dir() -> str:
    """Where the SDK may write its cache (it insists on having one)."""
    path = os.path.join(tempfile.gettempdir(), "tuangou-wechaty-cache")
    os.makedirs(path, exist_ok=True)
    return path


def _shim_pyee() -> None:
    # pyee 9 moved AsyncIOEventEmitter to pyee.asyncio and pyee 12 dropped the top-level
    # alias; the SDK does ``from pyee import AsyncIOEventEmitter`` (wechaty.wechaty,
    # wechaty.user.contact/room, wechaty_puppet_service.puppet, wechaty_puppet.watch_dog).
    import pyee
    import pyee.asyncio

    if not hasattr(pyee, "AsyncIOEventEmitter"):
        pyee.AsyncIOEventEmitter = pyee.asyncio.AsyncIOEventEmitter  # type: ignore[attr-defined]


def _shim_urllib3() -> None:
    # urllib3 2 removed ``urllib3.get_host``; wechaty.user.url_link imports it at import time
    # (it is only used to parse GitHub links, never by us). Same result shape: (scheme, host, port).
    import urllib3

    if not hasattr(urllib3, "get_host"):
        from urllib3.util import parse_url

        def get_host(url: str) -> tuple[str, str | None, int | None]:
            parsed = parse_url(url)
            return parsed.scheme or "http", parsed.hostname, parsed.port

        urllib3.get_host = get_host  # type: ignore[attr-defined]


def _shim_puppet_options() -> Any:
    # Python 3.11 dataclasses reject a default value whose class is unhashable (a dataclass
    # with eq=True and no frozen=True gets __hash__ = None), and WechatyOptions declares
    # ``puppet_options: PuppetOptions = PuppetOptions()``: "ValueError: mutable default".
    # Giving PuppetOptions identity hashing lets wechaty.wechaty import. That default
    # instance is then shared by every WechatyOptions and Wechaty() writes the token and
    # endpoint into it, so callers must always pass a fresh PuppetOptions() (see options()).
    from wechaty_puppet.schemas.puppet import PuppetOptions

    if PuppetOptions.__hash__ is None:
        PuppetOptions.__hash__ = object.__hash__  # type: ignore[assignment]
    return PuppetOptions


def _import_sdk() -> Sdk:
    # The SDK creates "./.wechaty" in the working directory at import time (the class body
    # of wechaty.plugin.WechatySchedulerMixin evaluates config.cache_dir) unless CACHE_DIR
    # is set; point it at a temp cache directory instead of littering the bot's directory.
    os.environ.setdefault("CACHE_DIR", _cache_dir())
    _shim_pyee()
    _shim_urllib3()
    puppet_options = _shim_puppet_options()
    before = set(logging.Logger.manager.loggerDict)
    with warnings.catch_warnings():
        # wechaty.plugin and wechaty_puppet_service.utils import telnetlib, deprecated in
        # 3.11 (removed in 3.13): a DeprecationWarning at import that -W error turns fatal.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="telnetlib")
        warnings.filterwarnings("ignore", message=".*telnetlib.*", category=DeprecationWarning)
        import wechaty_puppet_service.puppet as puppet_service_module
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from wechaty import Contact, Room, Wechaty, WechatyOptions
        from wechaty.user import ContactSelf, Tag
        from wechaty.utils.async_helper import SingleIdContainer
        from wechaty_grpc.wechaty.puppet import MessageType
    _adopt_sdk_loggers(before)
    return Sdk(Wechaty, WechatyOptions, puppet_options, MessageType, Contact, ContactSelf, Room,
               Tag, AsyncIOScheduler, puppet_service_module, SingleIdContainer)


def _adopt_sdk_loggers(before: set[str]) -> None:
    # wechaty_puppet.get_logger gives every SDK logger its own stderr handler at INFO with
    # propagate=False, bypassing the application's logging setup (and pytest's capture).
    # Hand the loggers created by the import back to the normal hierarchy, at WARNING: at
    # INFO the SDK logs every contact it loads.
    for name in set(logging.Logger.manager.loggerDict) - before:
        logger = logging.Logger.manager.loggerDict[name]
        if isinstance(logger, logging.Logger) and not logger.propagate:
            logger.handlers = []
            logger.propagate = True
            logger.setLevel(logging.WARNING)
    # PuppetService() warns "there are endpoint<…> and token<…>" on every construction,
    # writing the puppet service token into the log.
    logging.getLogger("PuppetService").addFilter(_no_tokens)


def _no_tokens(record: logging.LogRecord) -> bool:
    """Drop the SDK's log lines that print the service token."""
    return "token<" not in record.getMessage() and "tokens from" not in record.getMessage()


def load() -> Sdk:
    """The SDK, imported once with every shim applied."""
    global _sdk
    with _lock:
        if _sdk is None:
            _sdk = _import_sdk()
        return _sdk


def options(sdk: Sdk, endpoint: str, token: str, port: int) -> Any:
    """WechatyOptions for a puppet service at ``endpoint``.

    A fresh PuppetOptions every time (the class default is one shared, mutated instance).
    The token is required even when an endpoint is given (without one the SDK asks a
    discovery server on the internet); any string works for a service that checks none.
    ``port`` is where the SDK's plugin manager would serve its web UI: it is never started
    by the adapter, but give it a free one so nothing clashes if it ever is. The scheduler
    is a plain in-memory one: the default is a SQLite job store in the SDK's cache dir.
    """
    puppet_options = sdk.PuppetOptions()
    puppet_options.end_point = endpoint
    puppet_options.token = token or "tuangou"
    return sdk.WechatyOptions(
        name="tuangou", puppet="wechaty-puppet-service", puppet_options=puppet_options,
        host="127.0.0.1", port=port, token=puppet_options.token, endpoint=endpoint,
        scheduler=sdk.AsyncIOScheduler())


def isolate_pools(bot: Any) -> None:
    """Give one connection's bound SDK classes pools of their own.

    ``Contact.load`` / ``Room.load`` cache objects in a dict on the *base* class, shared by
    every Wechaty instance and kept across reconnects. A cached object stays bound to the
    puppet it was loaded with, so after a reconnect (a new puppet) it would call a stopped
    puppet, and two accounts in one process would share contacts. ``Wechaty.init_puppet``
    makes fresh subclasses bound to the new puppet; a ``_pool`` on each of them shadows the
    shared one.
    """
    for cls in (bot.Contact, bot.ContactSelf, bot.Room, bot.Tag):
        if hasattr(cls, "_pool"):
            cls._pool = {}


def skip_blocking_ping(sdk: Sdk) -> None:
    """Make the SDK's endpoint check a no-op; the adapter probes with asyncio first.

    ``PuppetService.start()`` pings the endpoint with a blocking ``telnetlib`` connect (up
    to 3 s) inside the event loop, stalling everything else the bot does meanwhile.
    """
    sdk.puppet_service_module.ping_endpoint = lambda end_point: True  # type: ignore[attr-defined]


def reset_sdk_caches() -> None:
    """Forget everything the SDK caches at class level (tests: between two fake services).

    The base classes' Contact/Room/Tag pools and the message-id set of the SDK's own event
    bridge (``SingleIdContainer``), which would drop a message id it saw in an earlier test.
    """
    sdk = load()
    for cls in (sdk.Contact, sdk.ContactSelf, sdk.Room, sdk.Tag):
        pool = cls.__dict__.get("_pool")
        if pool is not None:
            pool.clear()
    sdk.single_id_container._instance = None
