"""``retrainer card``: a version's model card, from stored evidence only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from retrainer.cli.common import JsonOpt, WorkspaceOpt, console, guard, open_workspace
from retrainer.cli.render import print_json
from retrainer.errors import SpecError

__all__ = ["card_cmd"]


def card_cmd(
    name: Annotated[str, typer.Argument(help="The model's name.")],
    version: Annotated[int, typer.Argument(help="The version.", show_default=False)],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the card here: .html (a page) or .md (Markdown); plots embedded.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """The model card of a version: intended use and owner, training data, metrics with
    their intervals, slices, fairness, robustness, drift at training time, the decision
    record, approvals, deployment and lineage hashes, with plots. Every number on it is a
    stored one; --json prints the evidence it is built from.

    Example: retrainer card rain 3 -o card.html
    """
    c = console()

    def body() -> dict[str, Any]:
        if output is None and not as_json:
            raise SpecError("name the card's file with -o PATH (.html or .md), or pass --json")
        from retrainer.governance.card import collect_card
        from retrainer.governance.card_render import card_format, write_card  # matplotlib

        if output is not None:
            card_format(output)  # refuse another suffix before any work
        with open_workspace(workspace) as ws:
            evidence = collect_card(ws.db, ws.artifacts, ws.spec, name, version)
        written = None if output is None else str(write_card(evidence, output))
        return {
            "model": name,
            "version": version,
            "card": written,
            "evidence_sha256": evidence.digest,
            "evidence": evidence.data,
        }

    data = guard(body)
    if as_json:
        print_json(c, data)
    else:
        c.print(f"wrote {data['card']} (model card of {name}:{version})", soft_wrap=True)
