"""The spec as retrainer reads it: ``spec show``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retrainer.cli.common import JsonOpt, WorkspaceOpt, console, guard
from retrainer.cli.render import print_json

__all__ = ["spec_show"]


def spec_show(workspace: WorkspaceOpt = Path(), as_json: JsonOpt = False) -> None:
    """The validated spec with every default filled in, and its sha256 (the hash runs
    and versions record). Secrets stay as their references (${env:NAME}): nothing is
    resolved and the store is not opened. The YAML printed is itself a valid spec.

    Example: [bold]retrainer spec show[/bold] (or --json)
    """
    import yaml

    from retrainer.spec import load_spec, spec_hash
    from retrainer.workspace import find_spec

    c = console()

    def body() -> dict[str, Any]:
        path = find_spec(workspace).resolve()
        spec = load_spec(path)
        return {"file": str(path), "sha256": spec_hash(spec), "spec": spec.model_dump(mode="json")}

    out = guard(body)
    if as_json:
        print_json(c, out)
        return
    c.print(f"# {out['file']}", soft_wrap=True)
    c.print(f"# spec sha256 {out['sha256']}", soft_wrap=True)
    text = yaml.safe_dump(out["spec"], sort_keys=False, allow_unicode=True, width=10_000)
    c.file.write(text)
