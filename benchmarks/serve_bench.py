"""The serving benchmark of issue 5: `retrainer serve` beside `mlflow models serve`.

One run, one machine, the same fitted HistGradientBoosting pipeline (the quickstart's
rainfall champion) behind three things:

- **floor**: ``estimator.predict_proba`` / ``predict`` called in this process on a
  1-row DataFrame (p50/p99) and on 100-row frames (rows/s);
- **retrainer**: ``retrainer serve`` (prediction log on, as always) with N uvicorn workers;
- **mlflow**: ``mlflow models serve --env-manager local`` of the same estimator, from
  MLflow's own venv (``benchmarks/.venv-mlflow``, ``benchmarks/requirements-mlflow.txt``),
  with the same N workers.

For each server, one at a time on loopback: an open-loop load of ``--rate`` single-row
requests per second for ``--duration`` seconds from a separate process
(``benchmarks/serve_load.py``, latency from the scheduled send time), then the maximum
throughput of 1-row and 100-row requests from a closed loop (``wrk`` when installed,
else ``serve_load.py closed``). Request bodies are real rows of the rainfall data.

The server runs the code of the committed ``HEAD`` (``git archive`` into a temp dir,
first on ``PYTHONPATH``) unless ``--working-tree``; the result records the commit.
Results go to ``benchmarks/results/serve.json``; the table in docs/benchmarks.md
("## Serving (issue 5)", between the ``serve-results`` markers) is rewritten unless
``--quick`` or ``--no-docs``. ``--render FILE`` rewrites the table from a result file.

    .venv/bin/python benchmarks/serve_bench.py              # ~5 min per worker count
    .venv/bin/python benchmarks/serve_bench.py --quick      # smoke run, ~2 min
    .venv/bin/python benchmarks/serve_bench.py --workers 1 2
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from machine import load_average, machine_info  # noqa: E402
from serve_load import quantile  # noqa: E402

DOC = REPO / "docs" / "benchmarks.md"
SECTION = "## Serving (issue 5)"
START, END = "<!-- serve-results:start -->", "<!-- serve-results:end -->"
MLFLOW_VENV = HERE / ".venv-mlflow"
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "MLFLOW_TRACKING_URI": "",  # set per run to a temp folder
    "PIP_NO_INDEX": "1",
    "HF_HUB_OFFLINE": "1",
    "NO_PROXY": "*",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- the model and the rows


def build_workspace(tmp: Path, src: Path | None) -> Path:
    """``retrainer quickstart`` into ``tmp/ws`` (HOME is ``tmp``): a trained rainfall champion."""
    ws = tmp / "ws"
    env = {**os.environ, "HOME": str(tmp)}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    subprocess.run(
        [sys.executable, "-m", "retrainer", "quickstart", str(ws), "--json"],
        env=env,
        cwd=tmp,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return ws


def load_champion(ws_root: Path) -> tuple[Any, str, int, list[str]]:
    """The champion's estimator as the server loads it, its model name, version and features."""
    from retrainer.registry.serialization import load_model
    from retrainer.workspace import Workspace

    ws = Workspace.open(ws_root)
    try:
        name = ws.spec.model.name
        version = ws.registry.get_alias(name, "champion")
        if version is None:
            raise SystemExit(f"{ws_root}: no champion")
        info = ws.registry.get(name, version)
        assert info.artifact_sha256 is not None
        data = ws.artifacts.get(info.artifact_sha256, what=f"model {name} v{version}")
        estimator = load_model(data, extra_trusted=ws.spec.train.trusted_types)
        feats = ws.spec.model.features
        if feats.categorical:
            raise SystemExit("this benchmark expects numeric features only")
        return estimator, name, version, list(feats.numeric)
    finally:
        ws.close()


def real_rows(ws_root: Path, features: list[str], n: int, seed: int = 5) -> list[dict[str, float]]:
    """``n`` rows (complete on the features) drawn from the workspace's rainfall batches."""
    import numpy as np
    import pandas as pd

    files = sorted((ws_root / "data" / "batches").glob("*.parquet"))
    frames = [pd.read_parquet(f) for f in files]  # some years name a column differently
    df = pd.concat([f[features] for f in frames if set(features) <= set(f.columns)])
    df = df.dropna()
    idx = np.random.default_rng(seed).choice(len(df), size=n, replace=n > len(df))
    return [{c: float(v) for c, v in zip(features, row, strict=True)} for row in df.to_numpy()[idx]]


def bodies(rows: list[dict[str, float]], kind: str, size: int, count: int) -> list[Any]:
    """Request bodies of ``size`` rows each, for ``kind`` in {retrainer, mlflow}."""
    out = []
    for k in range(count):
        chunk = [rows[(k * size + j) % len(rows)] for j in range(size)]
        out.append({"records": chunk} if kind == "retrainer" else {"dataframe_records": chunk})
    return out


# ---------------------------------------------------------------- the floor


def floor(estimator: Any, rows: list[dict[str, float]], calls: int) -> dict[str, Any]:
    """In-process predict_proba/predict: 1-row latency and 100-row throughput, with the
    default OpenMP threads (one per core) and limited to one thread."""
    from threadpoolctl import threadpool_info, threadpool_limits

    out: dict[str, Any] = {
        "threadpools": [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]
    }
    out["default_threads"] = _floor(estimator, rows, calls)
    with threadpool_limits(1):
        out["one_thread"] = _floor(estimator, rows, calls)
    return out


def _floor(estimator: Any, rows: list[dict[str, float]], calls: int) -> dict[str, Any]:
    import pandas as pd

    frames1 = [pd.DataFrame([r]) for r in rows[:200]]
    frames100 = [pd.DataFrame(rows[k * 100 : (k + 1) * 100]) for k in range(20)]
    out: dict[str, Any] = {"calls": calls}
    for method in ("predict_proba", "predict"):
        fn = getattr(estimator, method)
        for f in frames1[:50]:
            fn(f)
        lat = []
        c0 = time.process_time()
        for i in range(calls):
            f = frames1[i % len(frames1)]
            t0 = time.perf_counter()
            fn(f)
            lat.append(time.perf_counter() - t0)
        cpu = time.process_time() - c0
        ms = [x * 1000 for x in lat]
        out[f"{method}_1row"] = {
            "p50_ms": quantile(ms, 0.5),
            "p99_ms": quantile(ms, 0.99),
            "max_ms": max(ms),
            "cpu_ms_per_call": cpu * 1000 / calls,
            "calls_per_s": len(lat) / sum(lat),
        }
        n100 = max(20, calls // 10)
        t0 = time.perf_counter()
        for i in range(n100):
            fn(frames100[i % len(frames100)])
        dt = time.perf_counter() - t0
        out[f"{method}_100row"] = {"calls_per_s": n100 / dt, "rows_per_s": 100 * n100 / dt}
    # what building the 1-row frame from a JSON-like dict costs on top
    t0 = time.perf_counter()
    for i in range(calls):
        estimator.predict_proba(pd.DataFrame([rows[i % len(rows)]]))
    out["dict_to_frame_predict_proba_1row_ms"] = (time.perf_counter() - t0) / calls * 1000
    return out


# ---------------------------------------------------------------- processes


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of ``root`` and its live descendants (from /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total = 0.0
    for pid, t in times.items():
        p = pid
        while p > 1:
            if p == root:
                total += t
                break
            p = parents.get(p, 0)
    return total


@contextmanager
def server(cmd: list[str], env: dict[str, str], ready_url: str, logfile: Path) -> Iterator[int]:
    """Start ``cmd`` in its own session, wait for ``ready_url`` to answer 200, stop it after."""
    with logfile.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {proc.returncode}: {logfile.read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready_url} not ready after 180 s")
            time.sleep(0.3)
        yield proc.pid
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the session we started: server and workers
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with contextlib.suppress(ProcessLookupError):  # workers a dead parent left behind
            os.killpg(proc.pid, signal.SIGKILL)


def post(url: str, body: Any) -> Any:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def load_process(args: list[str]) -> dict[str, Any]:
    """Run ``serve_load.py`` in its own process; its JSON result."""
    out = subprocess.run(
        [sys.executable, str(HERE / "serve_load.py"), *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


WRK_LUA = r"""
local bodies = {}
local n = 0
local i = 0
init = function(args)
  for line in io.lines(args[1]) do n = n + 1; bodies[n] = line end
end
request = function()
  i = i % n + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def throughput(
    url: str, body_list: list[Any], duration: float, connections: int, tmp: Path, rows: int
) -> dict[str, Any]:
    """Closed-loop maximum throughput: wrk when installed, else serve_load.py closed."""
    wrk = shutil.which("wrk")
    if wrk is not None:
        lines = tmp / f"bodies-{rows}.txt"
        lines.write_text("\n".join(json.dumps(b, separators=(",", ":")) for b in body_list))
        script = tmp / "post.lua"
        script.write_text(WRK_LUA)
        cmd = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s"]
        out = subprocess.run(
            [*cmd, "-s", str(script), url, "--", str(lines)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        raw = json.loads(next(s for s in out.splitlines() if s.startswith("WRKJSON "))[8:])
        errors = {k: raw[k] for k in ("connect", "read", "write", "status", "timeout") if raw[k]}
        ok = raw["requests"] - raw["status"]
        seconds = raw["duration_us"] / 1e6
        res = {
            "tool": "wrk -t1",
            "connections": connections,
            "duration_s": seconds,
            "completed": raw["requests"],
            "ok": ok,
            "errors": errors,
            "requests_per_s": ok / seconds,
            "latency": {
                "p50_ms": raw["p50_us"] / 1000,
                "p99_ms": raw["p99_us"] / 1000,
                "max_ms": raw["max_us"] / 1000,
            },
        }
    else:
        f = tmp / f"bodies-{rows}.json"
        f.write_text(json.dumps(body_list))
        res = load_process(
            ["closed", "--url", url, "--bodies", str(f), "--duration", str(duration),
             "--connections", str(connections)]
        )  # fmt: skip
        res["tool"] = "serve_load.py closed"
    res["rows_per_request"] = rows
    res["rows_per_s"] = res["requests_per_s"] * rows
    return res


def measure_server(
    label: str,
    cmd: list[str],
    env: dict[str, str],
    ready_url: str,
    predict_url: str,
    one: list[Any],
    hundred: list[Any],
    opts: argparse.Namespace,
    tmp: Path,
) -> dict[str, Any]:
    """The open loop and the two throughput runs, each against a freshly started and
    warmed-up server (an overloaded phase leaves a backlog that would spill into the next)."""
    res: dict[str, Any] = {"command": " ".join(cmd)}
    f1 = tmp / f"{label}-1.json"
    f1.write_text(json.dumps(one))
    phases = ["open_loop", "throughput_1row", "throughput_100row"]
    for phase in phases:
        logfile = tmp / f"{label}-{phase}.log"
        t0 = time.monotonic()
        with server(cmd, env, ready_url, logfile) as pid:
            res.setdefault("startup_s", time.monotonic() - t0)
            res.setdefault("sample_response_1row", post(predict_url, one[0]))
            load_process(["closed", "--url", predict_url, "--bodies", str(f1), "--duration", "3",
                          "--connections", "2"])  # fmt: skip
            time.sleep(1)
            before = load_average()
            c0 = tree_cpu_s(pid)
            if phase == "open_loop":
                log(f"{label}: open loop {opts.rate:g}/s for {opts.duration:g} s")
                r = load_process(
                    ["open", "--url", predict_url, "--bodies", str(f1), "--rate",
                     str(opts.rate), "--duration", str(opts.duration)]
                )  # fmt: skip
            else:
                rows, body_list = (1, one) if phase == "throughput_1row" else (100, hundred)
                log(f"{label}: max throughput, {rows}-row requests, {opts.tp_duration:g} s")
                r = throughput(
                    predict_url, body_list, opts.tp_duration, opts.connections, tmp, rows
                )
            r["server_cpu_s"] = tree_cpu_s(pid) - c0
            r["server_cpu_ms_per_request"] = r["server_cpu_s"] * 1000 / max(1, r["completed"])
            r["load_before"], r["load_after"] = before, load_average()
            res[phase] = r
            if label.startswith("retrainer"):
                try:
                    r["health_log"] = get(ready_url.replace("/ready", "/health")).get("log")
                except (urllib.error.URLError, OSError) as exc:
                    r["health_log"] = {"error": str(exc)}
        r["server_log_tail"] = logfile.read_text()[-1000:]
    return res


# ---------------------------------------------------------------- the run


def versions(mlflow_python: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dist in ("retrainer", "scikit-learn", "uvicorn", "fastapi", "pandas", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    if mlflow_python is not None:
        code = (
            "import json, importlib.metadata as m; print(json.dumps({d: m.version(d) for d in "
            "['mlflow', 'scikit-learn', 'uvicorn', 'fastapi', 'pandas', 'numpy']}))"
        )
        mv = subprocess.run([str(mlflow_python), "-c", code], capture_output=True, text=True)
        out["mlflow_venv"] = json.loads(mv.stdout) if mv.returncode == 0 else mv.stderr[-500:]
    wrk = shutil.which("wrk")
    if wrk:
        v = subprocess.run([wrk, "--version"], capture_output=True, text=True)
        out["wrk"] = (v.stdout or v.stderr).split("\n")[0].strip()
    return out


def export_source(tmp: Path) -> Path:
    """``git archive HEAD src`` into ``tmp``: the committed code, whatever the working tree."""
    dest = tmp / "src-head"
    dest.mkdir()
    archive = subprocess.run(
        ["git", "archive", "HEAD", "src"], cwd=REPO, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


def run(opts: argparse.Namespace) -> dict[str, Any]:
    mlflow_python = MLFLOW_VENV / "bin" / "python"
    if not opts.no_mlflow and not mlflow_python.exists():
        raise SystemExit(
            f"{mlflow_python} is missing: make {MLFLOW_VENV.relative_to(REPO)}/.installed "
            "(or pass --no-mlflow)"
        )
    result: dict[str, Any] = {
        "benchmark": "serve",
        "quick": opts.quick,
        "argv": sys.argv[1:],
        "machine": machine_info(),
        "load_start": load_average(),
        "versions": versions(None if opts.no_mlflow else mlflow_python),
        "settings": {
            "rate": opts.rate,
            "duration_s": opts.duration,
            "throughput_duration_s": opts.tp_duration,
            "connections": opts.connections,
            "workers": opts.workers,
            "omp_num_threads": opts.omp_threads,
            "code": "working tree" if opts.working_tree else "git HEAD (git archive)",
        },
    }
    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    try:
        src = None if opts.working_tree else export_source(tmp)
        if src is not None:
            sys.path.insert(0, str(src))
        if opts.workspace is None:
            log("building the quickstart workspace (rainfall champion)")
            ws_root = build_workspace(tmp, src)
        else:
            ws_root = opts.workspace.resolve()
        estimator, name, version, features = load_champion(ws_root)
        result["model"] = {
            "name": name,
            "version": version,
            "estimator": repr(estimator).replace("\n", " ")[:400],
            "features": features,
        }
        rows = real_rows(ws_root, features, 5000)
        log("floor: in-process predict_proba / predict")
        result["floor"] = floor(estimator, rows, opts.floor_calls)
        one_r, hundred_r = bodies(rows, "retrainer", 1, 1000), bodies(rows, "retrainer", 100, 50)
        one_m, hundred_m = bodies(rows, "mlflow", 1, 1000), bodies(rows, "mlflow", 100, 50)

        mlflow_model = None
        if not opts.no_mlflow:
            pkl = tmp / "model.pkl"
            pkl.write_bytes(pickle.dumps(estimator, protocol=5))
            mlflow_model = tmp / "mlflow-model"
            env = {**os.environ, **QUIET_ENV, "HOME": str(tmp)}
            env["MLFLOW_TRACKING_URI"] = (tmp / "mlruns").as_uri()
            exp = subprocess.run(
                [str(mlflow_python), str(HERE / "serve_mlflow_export.py"), str(pkl),
                 str(mlflow_model)],
                env=env, check=True, capture_output=True, text=True,
            )  # fmt: skip
            result["mlflow_export"] = json.loads(exp.stdout.strip().splitlines()[-1])

        result["runs"] = []
        for workers, threads in itertools.product(opts.workers, opts.omp_threads):
            omp = {} if threads == "default" else {"OMP_NUM_THREADS": str(int(threads))}
            entry: dict[str, Any] = {"workers": workers, "omp_num_threads": threads}
            tag = f"w{workers}-omp{threads}"
            port = free_port()
            env = {**os.environ, "HOME": str(tmp), **omp}
            if src is not None:
                env["PYTHONPATH"] = str(src)
            cmd = [sys.executable, "-m", "retrainer", "serve", "-w", str(ws_root), "--host",
                   "127.0.0.1", "--port", str(port), "--workers", str(workers)]  # fmt: skip
            base = f"http://127.0.0.1:{port}"
            entry["retrainer"] = measure_server(
                f"retrainer-{tag}", cmd, env, f"{base}/ready",
                f"{base}/v1/models/{name}/predict", one_r, hundred_r, opts, tmp,
            )  # fmt: skip
            if mlflow_model is not None:
                port = free_port()
                bindir = str(MLFLOW_VENV / "bin")
                env = {**os.environ, **QUIET_ENV, "HOME": str(tmp), **omp}
                env["MLFLOW_TRACKING_URI"] = (tmp / "mlruns").as_uri()
                env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
                env.pop("PYTHONPATH", None)
                env["VIRTUAL_ENV"] = str(MLFLOW_VENV)
                cmd = [str(MLFLOW_VENV / "bin" / "mlflow"), "models", "serve", "-m",
                       str(mlflow_model), "--env-manager", "local", "-h", "127.0.0.1",
                       "-p", str(port), "--workers", str(workers)]  # fmt: skip
                base = f"http://127.0.0.1:{port}"
                entry["mlflow"] = measure_server(
                    f"mlflow-{tag}", cmd, env, f"{base}/ping", f"{base}/invocations",
                    one_m, hundred_m, opts, tmp,
                )  # fmt: skip
            result["runs"].append(entry)
    finally:
        result["load_end"] = load_average()
        shutil.rmtree(tmp, ignore_errors=True)
    return result


# ---------------------------------------------------------------- the report


def _f(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


def _errors(r: dict[str, Any]) -> str:
    n = sum(r.get("errors", {}).values()) + r.get("non_2xx", 0)
    return f"{n:,}"


def _loads(*phases: dict[str, Any]) -> str:
    """The 1-minute load average at the end of each phase."""
    return " / ".join(_f(p.get("load_after", {}).get("1m"), 1) for p in phases)


def render(result: dict[str, Any]) -> str:
    """The markdown between the serve-results markers."""
    m, v, s = result["machine"], result["versions"], result["settings"]
    mv = v.get("mlflow_venv") if isinstance(v.get("mlflow_venv"), dict) else {}
    cmd = ".venv/bin/python benchmarks/serve_bench.py " + " ".join(result["argv"])
    lines = [
        START,
        "",
        "### Results (written by `benchmarks/serve_bench.py`)",
        "",
        f"Command: `{cmd.strip()}` (or `make bench-serve`). Git {m['git_commit']}"
        f" ({s['code']}); {m['cpu_model']}, {m['cpu_count']} cores, Python {m['python']}. "
        f"Load average (1 min) {result['load_start']['1m']:.2f} at the start "
        f"({result['load_start']['at']}), {result['load_end']['1m']:.2f} at the end.",
        "",
        f"Versions: retrainer {v.get('retrainer')}, scikit-learn {v.get('scikit-learn')}, "
        f"uvicorn {v.get('uvicorn')}, FastAPI {v.get('fastapi')}; MLflow "
        f"{mv.get('mlflow', '-')} (its venv: scikit-learn {mv.get('scikit-learn', '-')}, uvicorn "
        f"{mv.get('uvicorn', '-')}); load generator: `benchmarks/serve_load.py` (open loop), "
        f"{v.get('wrk') or 'serve_load.py closed'} with {s['connections']} connections "
        f"(throughput). Model: {result['model']['name']} v{result['model']['version']}, "
        f"HistGradientBoostingClassifier pipeline, {len(result['model']['features'])} numeric "
        "features.",
        "",
    ]
    fl = result["floor"]
    lines += [
        "| floor: in-process, same estimator | OpenMP threads | 1 row: p50 | p99 "
        "| CPU per call | 100-row frames |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for variant, label in (("default_threads", "default (1 per core)"), ("one_thread", "1")):
        for meth in ("predict_proba", "predict"):
            a, b = fl[variant][f"{meth}_1row"], fl[variant][f"{meth}_100row"]
            lines.append(
                f"| `{meth}` | {label} | {_f(a['p50_ms'], 2)} ms | {_f(a['p99_ms'], 2)} ms"
                f" | {_f(a['cpu_ms_per_call'], 2)} ms | {_f(b['rows_per_s'], 0)} rows/s |"
            )
    lines.append("")
    for run_ in result["runs"]:
        w = run_["workers"]
        threads = run_.get("omp_num_threads", "default")
        omp = (
            "OpenMP threads as shipped (`OMP_NUM_THREADS` unset: one per core)"
            if threads == "default"
            else f"`OMP_NUM_THREADS={threads}` set for both servers"
        )
        lines += [
            f"**{w} uvicorn worker{'s' if w > 1 else ''}** for each server, {omp}:",
            "",
            f"| {w} worker{'s' if w > 1 else ''}, OMP {threads} | open loop {s['rate']:g}/s for "
            f"{s['duration_s']:g} s: p50 | p99 | max | achieved | errors | server CPU per request "
            "| max throughput, 1 row | 100 rows | 100 rows: rows/s | load (1 min) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for who in ("retrainer", "mlflow"):
            r = run_.get(who)
            if r is None:
                continue
            o, t1, t100 = r["open_loop"], r["throughput_1row"], r["throughput_100row"]
            lat = o["latency"]
            lines.append(
                f"| {who} | {_f(lat['p50_ms'], 2)} ms | {_f(lat['p99_ms'], 2)} ms | "
                f"{_f(lat['max_ms'], 1)} ms | {_f(o['achieved_rate'])}/s | {_errors(o)} | "
                f"{_f(o['server_cpu_ms_per_request'], 2)} ms | "
                f"{_f(t1['requests_per_s'], 0)} req/s ({_errors(t1)} err) | "
                f"{_f(t100['requests_per_s'], 0)} req/s ({_errors(t100)} err) | "
                f"{_f(t100['rows_per_s'], 0)} | {_loads(o, t1, t100)} |"
            )
        r, ml = run_.get("retrainer"), run_.get("mlflow")
        p99 = r["open_loop"]["latency"]["p99_ms"] if r else None
        ok_p99 = p99 is not None and p99 <= 10 and _errors(r["open_loop"]) == "0"
        verdicts = [f"p99 {_f(p99, 2)} ms at {s['rate']:g}/s (goal <= 10 ms): "
                    f"**{'met' if ok_p99 else 'not met'}**"]  # fmt: skip
        if r and ml:
            for rows in (1, 100):
                a = r[f"throughput_{rows}row"]["requests_per_s"]
                b = ml[f"throughput_{rows}row"]["requests_per_s"]
                ratio = a / b if b else None
                ok = ratio is not None and ratio >= 1.5
                verdicts.append(
                    f"throughput {rows}-row retrainer/MLflow {_f(ratio, 2)}x (goal >= 1.5x): "
                    f"**{'met' if ok else 'not met'}**"
                )
        lines += ["", "Verdicts: " + "; ".join(verdicts) + ".", ""]
        lines.append(
            "Open-loop send lag of the load generator (actual minus scheduled send, p99): "
            + ", ".join(
                f"{who} {_f(run_[who]['open_loop']['send_lag']['p99_ms'], 2)} ms"
                for who in ("retrainer", "mlflow")
                if who in run_
            )
            + "."
        )
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


INTRO = f"""{SECTION}

Not written yet: run `make bench-serve`.
"""


def write_doc(result: dict[str, Any], doc: Path = DOC) -> None:
    """Replace the text between the serve-results markers (adding the section at the end
    of the page if it is missing); the rest of the page is left alone."""
    text = doc.read_text()
    if START not in text:
        if SECTION not in text:
            text = text.rstrip("\n") + "\n\n" + INTRO
        text = text.rstrip("\n") + f"\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    doc.write_text(head + render(result) + tail)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 10 s load, 5 s throughput")
    p.add_argument("--workers", type=int, nargs="+", default=[1], help="uvicorn workers")
    p.add_argument("--rate", type=float, default=200.0, help="open loop: requests/s")
    p.add_argument("--duration", type=float, default=None, help="open loop seconds (60)")
    p.add_argument("--tp-duration", type=float, default=None, help="throughput seconds (20)")
    p.add_argument(
        "--omp-threads",
        nargs="+",
        default=["default"],
        help="OMP_NUM_THREADS for both servers, one run each: 'default' (unset: one "
        "OpenMP thread per core) or a number",
    )
    p.add_argument("--connections", type=int, default=8, help="throughput: connections")
    p.add_argument("--floor-calls", type=int, default=None, help="floor: timed calls (3000)")
    p.add_argument("--workspace", type=Path, default=None, help="reuse a quickstart workspace")
    p.add_argument("--working-tree", action="store_true", help="serve src/ as it is, not HEAD")
    p.add_argument("--no-mlflow", action="store_true", help="skip MLflow")
    p.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    p.add_argument("--out", type=Path, default=None, help="result JSON")
    p.add_argument("--render", type=Path, default=None, help="only rewrite the doc from FILE")
    opts = p.parse_args(argv)
    if opts.render is not None:
        write_doc(json.loads(opts.render.read_text()))
        return 0
    opts.duration = opts.duration or (10.0 if opts.quick else 60.0)
    opts.tp_duration = opts.tp_duration or (5.0 if opts.quick else 20.0)
    opts.floor_calls = opts.floor_calls or (300 if opts.quick else 3000)
    out = opts.out or HERE / "results" / ("serve.quick.json" if opts.quick else "serve.json")
    result = run(opts)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    log(f"wrote {out}")
    print(render(result))
    if not (opts.quick or opts.no_docs):
        write_doc(result)
        log(f"rewrote the serving table in {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
