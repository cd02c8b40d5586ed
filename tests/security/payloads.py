"""The path payload matrix of SEC-03, for the security tests (not a test module).

``escapes(target)`` gives every payload as a string aiming at ``target`` (a folder
*outside* the root, given relative to the root's parent as ``../<name>/...``): plain and
encoded traversal, Windows separators, absolute paths, URL syntax that a careless
decoder or joiner would strip, and NUL. The symlink escape needs a real link, so each
test builds its own.
"""

from __future__ import annotations

from pathlib import Path

# kinds whose payload is an explicit absolute location: a spec may name one on purpose
ABSOLUTE = frozenset({"absolute", "proc-root", "file-absolute"})


def escapes(outside: Path) -> dict[str, str]:
    """``{kind: payload}`` aiming at ``outside/x`` from a root beside ``outside``."""
    name = outside.name
    return {
        "dotdot": f"../{name}/x",
        "encoded": f"%2e%2e%2f{name}%2fx",
        "double-encoded": f"%252e%252e%252f{name}%252fx",
        "backslash": f"..\\{name}\\x",
        "absolute": f"{outside}/x",
        "proc-root": f"//proc/self/root{outside}/x",
        "file-relative": f"file://../{name}/x",
        "file-absolute": f"file://{outside}/x",
        "fragment": f"d/#/../../../{name}/x",
        "query": f"d/?../../../{name}/x",
        "semicolon": f"d/;/../../../{name}/x",
        "nul": f"d/x\x00/../../../{name}/x",
    }
