"""What every spec section shares: the strict base model and durations (``90d``)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
)

__all__ = ["Duration", "Section", "parse_duration", "parse_executor"]

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """Parse ``"90d"``, ``"12h"``, ``"2w"``, ``"30m"`` or ``"45s"`` into a timedelta."""
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a duration such as '90d', '12h', '2w' or '30m', got {value!r}")
    if int(match.group(1)) == 0:
        raise ValueError(f"expected a positive duration such as '90d', got {value!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(_format_duration, return_type=str)
]


class Section(BaseModel):
    """A spec section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_executor(value: str) -> tuple[str, str | None]:
    """The spec's ``executor``: ``("local", None)``, ``("dask-local", None)`` or
    ``("dask", "tcp://HOST:PORT")``.

    Raises:
        ValueError: ``value`` is none of the three forms (the message says what is expected).
    """
    text = value.strip()
    if text in ("local", "dask-local"):
        return text, None
    if text.startswith("dask://"):
        hostport = text[len("dask://") :]
        host, sep, port = hostport.rpartition(":")
        if sep and host and port.isdigit() and 0 < int(port) < 65536 and "/" not in hostport:
            return "dask", f"tcp://{host}:{int(port)}"
    raise ValueError(f"expected 'local', 'dask-local' or 'dask://HOST:PORT', got {value!r}")
