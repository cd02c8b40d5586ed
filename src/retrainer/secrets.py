"""Secrets by reference: ``${env:NAME}`` in a spec string, resolved only where it is used.

A spec names a secret instead of holding it::

    store: postgresql+psycopg://app:${env:PG_PASSWORD}@db.internal/retrainer

The parsed spec keeps the reference text, so everything derived from the spec (its hash,
``retrainer spec show``, lineage, the audit log) only ever sees ``${env:PG_PASSWORD}``.
The value is read from the environment by :meth:`Secrets.resolve` at the point of use
(the store URL when the engine is built, the data source, the artifact root, the audit
anchor, the alert webhook and its headers) and is not kept anywhere else.

Libraries may echo what they were given (a database name in "database ... does not
exist", a path in ``FileNotFoundError``). Code at a point of use therefore runs inside
:meth:`Secrets.scrubbed`, which re-raises any exception whose text holds a resolved value
with that value replaced by ``***``; :meth:`Secrets.redact` does the same for one string.

Example:
    >>> s = Secrets({"PG_PASSWORD": "hunter22"})
    >>> s.resolve("postgresql://app:${env:PG_PASSWORD}@db/x", key="store")
    'postgresql://app:hunter22@db/x'
    >>> s.redact("login failed for app:hunter22")
    'login failed for app:***'
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus, unquote

from retrainer.errors import RetrainerError, SpecError

__all__ = ["MASK", "REFERENCE", "Secrets", "check_references", "has_reference", "references"]

REFERENCE = re.compile(r"\$\{env:([A-Z_][A-Z0-9_]*)\}")
"""A secret reference: ``${env:NAME}``, NAME upper case letters, digits and ``_``."""

MASK = "***"
_OPENER = "${env:"
_ANY = re.compile(r"\$\{env:[^}]*\}?")


def references(text: str) -> list[str]:
    """The variable names referenced in ``text``, in order (repeats kept)."""
    return REFERENCE.findall(text)


def has_reference(text: str | None) -> bool:
    """Whether ``text`` holds at least one ``${env:NAME}`` reference."""
    return bool(text) and REFERENCE.search(text or "") is not None


def check_references(data: Any, source: str, path: tuple[str | int, ...] = ()) -> None:
    """Refuse a malformed reference (``${env:lower}``, ``${env:}``, an unclosed ``${env:X``)
    anywhere in parsed YAML, naming the key path: a typo must not reach a connection
    string as literal text.

    Raises:
        SpecError: ``<source>: <key path>: malformed secret reference ...``.
    """
    if isinstance(data, Mapping):
        for key, value in data.items():
            check_references(value, source, (*path, str(key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            check_references(value, source, (*path, i))
    elif isinstance(data, str) and _OPENER in data:
        for found in _ANY.finditer(data):
            if not REFERENCE.fullmatch(found.group()):
                where = ".".join(map(str, path)) or "(top level)"
                raise SpecError(
                    f"{source}: {where}: malformed secret reference {found.group()!r}: "
                    "expected ${env:NAME} with NAME of upper-case letters, digits and _ "
                    "(e.g. ${env:PG_PASSWORD})"
                )


class Secrets:
    """Resolves ``${env:NAME}`` references from an environment and scrubs what it resolved.

    One instance per workspace (the composition root makes it from ``os.environ``).
    Only values it has resolved are redacted, in every form a library may print them:
    as given, percent-decoded and percent-encoded. Safe to share between threads: resolving
    only ever adds values (the set is replaced whole, never changed in place).
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._values: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls) -> Secrets:
        """Secrets read from this process's environment."""
        return cls(os.environ)

    def resolve(self, text: str, *, key: str) -> str:
        """``text`` with every reference replaced by its variable's value.

        Args:
            text: A spec value, e.g. ``"postgresql://app:${env:PG_PASSWORD}@db/x"``.
            key: The spec key it came from, for the error message (``"store"``).

        Raises:
            SpecError: A referenced variable is not set; the message names the key and
                the variable (never a value).
        """
        if _OPENER not in text:
            return text

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            found = self._env.get(name)
            if found is None:
                raise SpecError(
                    f"{key}: the secret reference ${{env:{name}}} names an environment "
                    f"variable that is not set; set {name} in the environment of every "
                    "process that opens this workspace"
                )
            self._remember(found)
            return found

        return REFERENCE.sub(value, text)

    def redact(self, text: str) -> str:
        """``text`` with every value this instance resolved replaced by ``***``."""
        for secret in self._values:  # longest first: a value inside another is masked too
            text = text.replace(secret, MASK)
        return text

    def leaks(self, text: str) -> bool:
        """Whether ``text`` holds a value this instance resolved."""
        return any(secret in text for secret in self._values)

    @contextmanager
    def scrubbed(self, key: str, wrap: type[RetrainerError] = RetrainerError) -> Iterator[None]:
        """Re-raise any exception that would show a resolved value, with it redacted.

        A retrainer error keeps its class and gets the redacted message; any other
        exception becomes ``wrap("<key>: <redacted text>")``. Either is raised without
        its chain (the causes may hold the value too). Exceptions that show no value
        pass unchanged.
        """
        try:
            yield
        except Exception as exc:
            if not self._values or not any(self.leaks(t) for t in _chain_texts(exc)):
                raise
            if isinstance(exc, RetrainerError):
                clean = copy.copy(exc)
                clean.message = self.redact(exc.message)
                clean.args = (clean.message,)
                raise clean from None
            raise wrap(f"{key}: {self.redact(_describe(exc))}") from None

    def _remember(self, value: str) -> None:
        forms = {value, unquote(value), quote(value, safe=""), quote_plus(value)} - {""}
        self._values = tuple(sorted({*self._values, *forms}, key=len, reverse=True))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _chain_texts(exc: BaseException) -> Iterator[str]:
    """The text of ``exc`` and of every exception in its cause/context chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield _describe(current)
        yield repr(current.args)
        current = current.__cause__ or current.__context__
