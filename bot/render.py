"""The one jinja2 environment: templates own the words, handlers hand over data."""

from __future__ import annotations

from decimal import Decimal
from importlib.resources import files
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined


def fmt_qty(value: Decimal | int | float | None) -> str:
    """2 → "2", 2.50 → "2.5"."""
    if value is None:
        return ""
    text = format(Decimal(value).normalize(), "f")
    return text


def fmt_money(value: Decimal | int | float | None) -> str:
    """39.90 → "39.9", 177.00 → "177", 0.333 → "0.33"."""
    if value is None:
        return ""
    return fmt_qty(Decimal(value).quantize(Decimal("0.01")))


class Renderer:
    """Renders ``templates/NAME.j2`` with data; member names are data, never template source."""

    def __init__(self) -> None:
        path = str(files("templates"))
        self.env = Environment(
            loader=FileSystemLoader(path),
            autoescape=False,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.env.filters["qty"] = fmt_qty
        self.env.filters["money"] = fmt_money

    def render(self, name: str, data: Any) -> str:
        """Render a template by its name without extension."""
        text = self.env.get_template(f"{name}.j2").render(**data)
        lines = [line.rstrip() for line in text.strip().split("\n") if line.strip()]
        return "\n".join(lines)
