"""The cycle under faults: SIGKILL at every step boundary and mid-write, corruption, failures.

Kills are real: a worker process runs the cycle and SIGKILLs itself from the
``on_step`` callback, or from ``os.fsync`` patched inside the worker only. Workers are
forked by one child Python (``sys.executable -c``) that imported retrainer once, so a
test does not pay the imports (seconds) for every kill. The parent then resumes
in-process and checks invariants 1, 2 and 7: exactly one champion (old or new, never
none or two), no half-written blob under its final name, and the previous champion
serving whatever failed.
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conftest import add_batch, synthetic_batch
from forkproc import ForkServerProcess
from retrainer.errors import ArtifactIntegrityError, TrainingError
from retrainer.orchestrate import STEPS, CycleResult, run_cycle
from retrainer.registry import CHAMPION, VersionInfo, list_events, verify_chain
from retrainer.registry.tables import Alias, RunStep, Snapshot
from retrainer.workspace import Workspace

MODEL = "toy"
NewWorkspace = Callable[..., Path]

SERVER = """
import os, signal, sys, traceback
from pathlib import Path

from retrainer.orchestrate import run_cycle
from retrainer.workspace import Workspace


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def arm_fsync(mode):
    real = os.fsync

    def fsync(fd):
        if sys._getframe(1).f_code.co_name == "_put_local":  # an artifact's temp file
            if mode == "kill-in-write":
                die()
            raise OSError(28, "No space left on device")
        return real(fd)

    os.fsync = fsync


def work(root, mode, step):
    def on_step(name, output):
        if name != step:
            return
        if mode == "kill-after":
            die()
        arm_fsync(mode)

    with Workspace.open(Path(root)) as ws:
        run_cycle(ws, actor="child", on_step=on_step)
    return 3  # the cycle finished: the fault was never injected


print("ready", flush=True)
for line in sys.stdin:
    root, mode, step, log = line.rstrip("\\n").split("\\t")
    pid = os.fork()
    if pid == 0:  # the worker: a fresh process that runs one cycle and meets its fault
        code = 1
        try:
            signal.alarm(120)
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(out, 1)
            os.dup2(out, 2)
            code = work(root, mode, step)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


@dataclass(frozen=True)
class Child:
    """How a worker process ended: its exit code (``-9`` when SIGKILLed) and its output."""

    returncode: int
    output: str


class ForkServer(ForkServerProcess):
    """A child Python (``sys.executable -c``) that imports retrainer once, then forks one
    worker process per request: each worker opens the workspace, runs a cycle and meets
    its fault. Real processes and real SIGKILLs, without paying the imports every time."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(SERVER, env)

    def run(self, root: Path, mode: str, step: str) -> Child:
        log = root.parent / f"worker-{mode}-{step}.log"
        code = int(self.ask(f"{root}\t{mode}\t{step}\t{log}"))
        return Child(code, log.read_text())


@pytest.fixture(scope="module")
def children(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    home = tmp_path_factory.mktemp("child-home")
    dropped = ("RETRAINER_WORKSPACE", "RETRAINER_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env |= {
        "RETRAINER_ACTOR": "tester",
        "HOME": str(home),
        "MPLCONFIGDIR": str(home / ".mpl"),
        "OPENBLAS_NUM_THREADS": "1",  # no BLAS thread pool in a process that forks
        "OMP_NUM_THREADS": "1",
    }
    server = ForkServer(env)
    try:
        yield server
    finally:
        server.close()


def assert_killed(child: Child) -> None:
    assert child.returncode == -signal.SIGKILL, (child.returncode, child.output[-3000:])


def cycle(root: Path, **kwargs: Any) -> CycleResult:
    with Workspace.open(root) as ws:
        return run_cycle(ws, actor="t", **kwargs)


def champion_rows(ws: Workspace) -> list[int]:
    """Every version an ``aliases`` row names champion of the model (must be 0 or 1 rows)."""
    return ws.db.transaction(
        lambda s: list(
            s.scalars(select(Alias.version).where(Alias.model == MODEL, Alias.alias == CHAMPION))
        )
    )


def step_rows(ws: Workspace, run_id: str) -> list[tuple[str, str]]:
    return ws.db.transaction(
        lambda s: [
            (r.name, r.status)
            for r in s.scalars(
                select(RunStep).where(RunStep.run_id == run_id).order_by(RunStep.seq)
            )
        ]
    )


def audit_actions(ws: Workspace) -> list[str]:
    return ws.db.transaction(lambda s: [e.action for e in list_events(s, limit=100_000)])


def blobs(ws: Workspace) -> set[str]:
    """Names of every blob under ``sha256/``, after checking each hashes to its name."""
    names = set()
    for file in Path(ws.artifacts.root, "sha256").rglob("*"):
        if file.is_file():
            assert hashlib.sha256(file.read_bytes()).hexdigest() == file.name, file
            names.add(file.name)
    return names


def version_blobs(info: VersionInfo) -> set[str | None]:
    """A READY version's blobs: its model, the spec it was trained with (lineage) and what
    the monitor derived from its data."""
    derived = ("reference_profile_sha256", "cbpe_sha256", "spec_artifact_sha256")
    return {info.artifact_sha256} | {info.lineage[k] for k in derived if k in info.lineage}


def snapshot_blobs(ws: Workspace) -> set[str]:
    return ws.db.transaction(lambda s: set(s.scalars(select(Snapshot.artifact_sha256))))


def temp_files(ws: Workspace) -> list[Path]:
    return sorted(Path(ws.artifacts.root, "tmp").glob("*.partial"))


def with_champion(make_workspace: NewWorkspace) -> Path:
    """A workspace whose v1 is champion, and a flipped batch waiting to be ingested."""
    root = make_workspace()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    assert cycle(root).promoted
    add_batch(root, "b2", synthetic_batch(2, 400, start_day=1, flipped=True))
    return root


# -- SIGKILL at every step boundary ------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["first", "over-champion"])
@pytest.mark.parametrize("kill_after", STEPS)
def test_kill_at_step_boundary_resumes_without_repeating_work(
    make_workspace: NewWorkspace, children: ForkServer, scenario: str, kill_after: str
) -> None:
    if scenario == "first":
        root = make_workspace()
        add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
        old, new = None, 1
    else:
        root = with_champion(make_workspace)
        old, new = 1, 2
    done = list(STEPS[: STEPS.index(kill_after) + 1])

    assert_killed(children.run(root, "kill-after", kill_after))

    with Workspace.open(root) as ws:
        [run] = [r for r in ws.journal.runs(MODEL) if r.status == "running"]
        journaled = ws.journal.get(run.id).steps
        assert list(journaled) == done
        # the champion is the old or the new version, never none (once there was one) or two
        assert champion_rows(ws) == (
            [new] if kill_after == "promote" else [] if old is None else [old]
        )

    executed: list[str] = []
    with Workspace.open(root) as ws:
        result = run_cycle(ws, actor="t", on_step=lambda name, _: executed.append(name))

        assert result.resumed is True
        assert result.run_id == run.id
        assert executed == list(STEPS[len(done) :])  # finished steps are not repeated
        assert (result.status, result.version, result.promoted) == ("succeeded", new, True)
        state = ws.journal.get(run.id)
        assert state.status == "succeeded"
        assert list(state.steps) == list(STEPS)
        assert {k: state.steps[k] for k in done} == journaled
        assert step_rows(ws, run.id) == [(name, "done") for name in STEPS]

        versions = ws.registry.versions(MODEL)
        assert [v.version for v in versions] == list(range(new, 0, -1))  # trained once: no gap
        [mine] = [v for v in versions if v.run_id == run.id]
        assert (mine.version, mine.status, mine.gates_passed) == (new, "READY", True)
        assert champion_rows(ws) == [new]
        history = [(m.from_version, m.to_version) for m in ws.registry.history(MODEL, CHAMPION)]
        assert history == ([(None, 1)] if old is None else [(None, 1), (1, 2)])

        actions = audit_actions(ws)
        assert actions.count("run.resume") == 1
        assert actions.count("version.create") == new
        assert actions.count("promote") == new
        assert ws.db.transaction(verify_chain).ok
        assert blobs(ws) == snapshot_blobs(ws) | set().union(*map(version_blobs, versions))

    again = cycle(root)
    assert again.resumed is False
    assert again.outcome.startswith("no retrain")


# -- SIGKILL in the middle of an artifact write ---------------------------------------------------


@pytest.mark.parametrize("scenario", ["first", "over-champion"])
def test_kill_mid_artifact_write_never_publishes_a_partial_blob(
    make_workspace: NewWorkspace, children: ForkServer, scenario: str
) -> None:
    if scenario == "first":
        root = make_workspace()
        add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
        old, interrupted = None, 1
    else:
        root = with_champion(make_workspace)
        old, interrupted = 1, 2

    assert_killed(children.run(root, "kill-in-write", "datasets"))

    with Workspace.open(root) as ws:
        [run] = [r for r in ws.journal.runs(MODEL) if r.status == "running"]
        assert list(ws.journal.get(run.id).steps) == list(STEPS[: STEPS.index("datasets") + 1])
        info = ws.registry.get(MODEL, interrupted)
        assert (info.status, info.artifact_sha256, info.run_id) == ("PENDING", None, run.id)
        assert len(temp_files(ws)) == 1  # the write died after its bytes, before publishing
        # every published blob is whole, and no model blob was published at all
        assert blobs(ws) == snapshot_blobs(ws) | (
            set() if old is None else version_blobs(ws.registry.get(MODEL, old))
        )
        assert champion_rows(ws) == ([] if old is None else [old])

        result = run_cycle(ws, actor="t")

        assert (result.resumed, result.status, result.promoted) == (True, "succeeded", True)
        assert result.version == interrupted + 1
        failed = ws.registry.get(MODEL, interrupted)
        assert failed.status == "FAILED" and failed.aliases == ()
        fresh = ws.registry.get(MODEL, interrupted + 1)
        assert (fresh.status, fresh.run_id, fresh.aliases) == ("READY", run.id, (CHAMPION,))
        assert champion_rows(ws) == [interrupted + 1]
        assert fresh.artifact_sha256 in blobs(ws)
        assert "version.failed" in audit_actions(ws)
        assert ws.artifacts.sweep_temp(timedelta(0)) == 1
        assert temp_files(ws) == []


# -- a corrupted champion artifact ----------------------------------------------------------------


def test_corrupted_champion_artifact_is_refused_and_champion_keeps_its_alias(
    make_workspace: NewWorkspace,
) -> None:
    root = make_workspace()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    cycle(root)
    with Workspace.open(root) as ws:
        sha = ws.registry.get(MODEL, 1).artifact_sha256
        assert sha is not None
        blob = Path(ws.artifacts.path_of(sha))
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0x01
        blob.write_bytes(bytes(data))
        actual = hashlib.sha256(bytes(data)).hexdigest()

        with pytest.raises(ArtifactIntegrityError) as direct:
            ws.artifacts.get(sha, what=f"model {MODEL} v1")
        for part in ("model toy v1", sha, actual, "sha256 mismatch"):
            assert part in str(direct.value)

    add_batch(root, "b2", synthetic_batch(2, 300, start_day=1))
    with Workspace.open(root) as ws:
        with pytest.raises(ArtifactIntegrityError) as raised:
            run_cycle(ws, actor="t")
        message = str(raised.value)
        for part in ("model toy v1", sha, actual):
            assert part in message

        assert ws.registry.get_alias(MODEL, CHAMPION) == 1
        assert champion_rows(ws) == [1]
        assert [v.version for v in ws.registry.versions(MODEL)] == [1]
        [run] = ws.journal.runs(MODEL, limit=1)
        assert (run.status, run.outcome, run.error) == ("failed", "failed at step monitor", message)
        assert ("monitor", "failed") in step_rows(ws, run.id)
        assert "train" not in ws.journal.get(run.id).steps
        assert audit_actions(ws)[-1] == "run.failed"
        assert ws.db.transaction(verify_chain).ok


# -- a failure inside training -----------------------------------------------------------------


def set_params(root: Path, params: str) -> None:
    path = root / "retrainer.yaml"
    text = path.read_text()
    start = text.index("  params: ")
    end = text.index("\n", start)
    path.write_text(text[:start] + f"  params: {params}" + text[end:])


def test_failure_inside_training_leaves_champion_and_next_fixed_cycle_works(
    make_workspace: NewWorkspace,
) -> None:
    root = make_workspace()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    cycle(root)
    set_params(root, "{max_iter: 200, C: -1}")
    add_batch(root, "b2", synthetic_batch(2, 700, start_day=1, flipped=True))

    with Workspace.open(root) as ws:
        with pytest.raises(TrainingError, match="'C' parameter"):
            run_cycle(ws, actor="t")
        [run] = ws.journal.runs(MODEL, limit=1)
        assert (run.status, run.outcome) == ("failed", "failed at step train")
        assert run.error is not None and "'C' parameter" in run.error
        assert ("train", "failed") in step_rows(ws, run.id)
        v2 = ws.registry.get(MODEL, 2)
        assert (v2.status, v2.artifact_sha256, v2.aliases) == ("FAILED", None, ())
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1
        assert champion_rows(ws) == [1]

    set_params(root, "{max_iter: 200}")
    result = cycle(root)

    assert (result.status, result.resumed, result.promoted) == ("succeeded", False, True)
    assert result.version == 3
    with Workspace.open(root) as ws:
        assert [(v.version, v.status) for v in ws.registry.versions(MODEL)] == [
            (3, "READY"),
            (2, "FAILED"),
            (1, "READY"),
        ]
        assert champion_rows(ws) == [3]
        assert ws.db.transaction(verify_chain).ok


# -- regressions: a failed run must not cost the next one its evidence or its retry -------------


def test_first_cycle_retries_after_a_training_failure(make_workspace: NewWorkspace) -> None:
    root = make_workspace()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    set_params(root, "{max_iter: 200, C: -1}")
    with pytest.raises(TrainingError):
        cycle(root)
    set_params(root, "{max_iter: 200}")

    result = cycle(root)

    assert (result.status, result.version, result.promoted) == ("succeeded", 2, True)


def test_performance_evidence_survives_a_failed_run(make_workspace: NewWorkspace) -> None:
    root = make_workspace()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    cycle(root)
    set_params(root, "{max_iter: 200, C: -1}")
    add_batch(root, "b2", synthetic_batch(2, 300, start_day=1, flipped=True))  # < 600 rows
    with pytest.raises(TrainingError):
        cycle(root)
    set_params(root, "{max_iter: 200}")

    result = cycle(root)

    assert result.steps["decide"]["fire"] is True, result.outcome
    assert result.promoted


def test_disk_full_during_artifact_write_fails_the_version(
    make_workspace: NewWorkspace, children: ForkServer
) -> None:
    root = make_workspace()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))

    child = children.run(root, "disk-full", "datasets")

    assert child.returncode == 1 and "No space left on device" in child.output, child.output
    with Workspace.open(root) as ws:
        [run] = ws.journal.runs(MODEL, limit=1)
        assert (run.status, run.outcome) == ("failed", "failed at step train")
        assert blobs(ws) == snapshot_blobs(ws)
        assert temp_files(ws) == []
        assert champion_rows(ws) == []
        assert ws.registry.get(MODEL, 1).status == "FAILED"
