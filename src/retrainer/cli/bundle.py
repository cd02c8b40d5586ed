"""``retrainer bundle``: export a version's reproduction bundle (a folder or a ``.zip``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from retrainer.cli.common import JsonOpt, WorkspaceOpt, console, guard, open_workspace
from retrainer.cli.render import print_json

__all__ = ["bundle_cmd"]


def bundle_cmd(
    name: Annotated[str, typer.Argument(help="The model's name.", show_default=False)],
    version: Annotated[int, typer.Argument(help="The version number.", show_default=False)],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the bundle: a .zip file, or else a folder. Must not exist "
            "or be empty.",
            show_default=False,
        ),
    ],
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Export what a version was made from as one portable bundle.

    The recorded spec (retrainer.yaml), the train and holdout snapshots, the
    model, lineage.json (lineage, params, metrics, decision record, approvals),
    environment.txt, a README and MANIFEST.json (each file's sha256 and size).
    Every input is verified against its recorded hash; the store is unchanged.
    Reproduce it with retrainer reproduce --from-bundle PATH. Exit 2 when the
    target exists and is not empty, 5 when an input changed, 3 when one is gone.

    Example: [bold]retrainer bundle rain 3 -o rain-v3.zip[/bold]
    """
    from retrainer.governance.bundle import export_bundle, refuse_non_empty

    c = console()

    def body() -> dict[str, Any]:
        refuse_non_empty(output)  # before opening the store
        with open_workspace(workspace) as ws:
            manifest = export_bundle(ws, name, version, output)
        return {"path": str(output)} | manifest

    done = guard(body)
    if as_json:
        print_json(c, done)
        return
    c.soft_wrap = True  # paths and hashes stay on one line
    files = done["files"]
    size = sum(f["size"] for f in files.values())
    c.print(
        f"wrote the bundle of {name} v{version} to {done['path']} "
        f"({len(files) + 1} files, {size:,} bytes)"
    )
    for file, entry in files.items():  # one line each: the hashes stay whole
        c.print(f"  {file:<16} {entry['size']:>12,} bytes  sha256 {entry['sha256']}")
    c.print(f"reproduce it with: retrainer reproduce --from-bundle {done['path']}")
