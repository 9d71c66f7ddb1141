"""Same-run speed of builds of several commits (issue #13: "a same-run benchmark shows no slowdown").

    python benchmarks/bench_across_commits.py --rounds 7            # f6a322f^ f6a322f HEAD
    python benchmarks/bench_across_commits.py A B --rounds 5        # any commits, the first is the base

Each commit gets a git worktree under /tmp/lossengine-builds/<sha> (reused when present), built in place
by that commit's own ``python setup.py build_ext --inplace -j 2``, run with this interpreter. The builds
are made comparable by building every one for the baseline x86-64 ISA: LOSSENGINE_PORTABLE=1 (commits
before the runtime ISA dispatch, f0d26e6, otherwise add -march=native) and LOSSENGINE_ISA_VARIANTS=none
(later commits; otherwise x86-64-v3/v4 variants are built too and picked at run time); each variable is
ignored by the commits that do not know it. So f6a322f^ and f6a322f get
``-O3 -fno-math-errno -fno-trapping-math -ffp-contract=off -fopenmp -DLE_USE_LIBMVEC`` and HEAD the
same plus ``--param=vect-max-peeling-for-alignment=0`` (its setup.py always adds it, part of its code).
The flags each build got are read back from the compiled module and printed. ``--native`` compares
the builds users get instead: no variable set, so the commits before f0d26e6 build with
-march=native and later ones build their x86-64-v3/v4 variants and load the best at run time
(worktrees under /tmp/lossengine-builds-native/).

Then rounds of worker processes, one per build in turn (A, B, C, A, B, C, ...), each run with
PYTHONPATH=<worktree> from a working directory outside every checkout (the worker asserts that
``lossengine.__file__`` lies in its worktree). A worker times every case of CASES: forward_backward(input,
target) with reduction='mean' (the API all the commits share; no out=), le.set_num_threads(1), plus a
2-thread pass over the large cases; per case the median of --repeats samples, each a loop of calls
lasting about --sample-ms. The table gives per case the median over rounds of each build's per-process
medians, in microseconds per call, and each build's ratio to the first commit's (above 1 = slower);
the spread column is the largest (max - min) / median over rounds of any build. The loss values of
the builds are compared too (a difference beyond float rounding is reported: then it is not the same
work). A second table gives the same workers' thread CPU time for the one-thread cases (steadier on a
shared machine: time spent descheduled is not counted). --instructions adds the instructions per call
of INSTRUCTION_CASES, the difference between a run of the calls and a run without them, counted by
``perf stat -e instructions:u`` where the machine has hardware counters, else by valgrind's callgrind
(virtual machines often have none; callgrind's count is deterministic but takes a few minutes).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILDS = Path("/tmp/lossengine-builds")
DEFAULT_COMMITS = ("f6a322f^", "f6a322f", "HEAD")
BUILD_ENV = {"LOSSENGINE_PORTABLE": "1", "LOSSENGINE_ISA_VARIANTS": "none"}

# (label, loss class, its keyword arguments, input shape, target kind, dtype, threads)
CASES = [
    ("MSELoss 1e3 float64 (call overhead)", "MSELoss", {}, (1000,), "same", "float64", 1),
    ("MSELoss 1e3", "MSELoss", {}, (1000,), "same", "float32", 1),
    ("MSELoss 1e6", "MSELoss", {}, (10 ** 6,), "same", "float32", 1),
    ("BCEWithLogitsLoss 1e3", "BCEWithLogitsLoss", {}, (1000,), "prob", "float32", 1),
    ("BCEWithLogitsLoss 1e6", "BCEWithLogitsLoss", {}, (10 ** 6,), "prob", "float32", 1),
    ("HuberLoss 1e6", "HuberLoss", {}, (10 ** 6,), "same", "float32", 1),
    ("CrossEntropyLoss 64x10", "CrossEntropyLoss", {}, (64, 10), "class", "float32", 1),
    ("CrossEntropyLoss 4096x1000", "CrossEntropyLoss", {}, (4096, 1000), "class", "float32", 1),
    ("NLLLoss 4096x100", "NLLLoss", {}, (4096, 100), "class", "float32", 1),
    ("MultiMarginLoss 4096x100", "MultiMarginLoss", {}, (4096, 100), "class", "float32", 1),
    ("MSELoss 1e6, 2 threads", "MSELoss", {}, (10 ** 6,), "same", "float32", 2),
    ("BCEWithLogitsLoss 1e6, 2 threads", "BCEWithLogitsLoss", {}, (10 ** 6,), "prob", "float32", 2),
    ("HuberLoss 1e6, 2 threads", "HuberLoss", {}, (10 ** 6,), "same", "float32", 2),
    ("CrossEntropyLoss 4096x1000, 2 threads", "CrossEntropyLoss", {}, (4096, 1000), "class", "float32", 2),
]
INSTRUCTION_CASES = ("MSELoss 1e3 float64 (call overhead)", "CrossEntropyLoss 64x10", "MultiMarginLoss 4096x100")


# -- the worker: runs inside one build's worktree ---------------------------------------------------
def make_call(case):
    import numpy as np
    import lossengine as le

    label, name, kwargs, shape, target, dtype, threads = case
    rng = np.random.default_rng(13)
    x = rng.standard_normal(shape).astype(dtype)
    if target == "same":
        y = rng.standard_normal(shape).astype(dtype)
    elif target == "prob":
        y = rng.random(shape).astype(dtype)
    else:
        y = rng.integers(0, shape[1], size=shape[0]).astype(np.int64)
    loss = getattr(le, name)(reduction="mean", **kwargs)
    return threads, (lambda: loss.forward_backward(x, y))


def time_case(case, repeats, sample_ms):
    import lossengine as le

    threads, call = make_call(case)
    le.set_num_threads(threads)
    value = float(call()[0])
    call()
    number, elapsed = 1, 0.0
    while True:                                   # calls per sample: about sample_ms of them
        start = time.perf_counter()
        for _ in range(number):
            call()
        elapsed = time.perf_counter() - start
        if elapsed * 1e3 >= sample_ms / 4 or number >= 1 << 20:
            break
        number *= 4
    number = max(1, round(number * sample_ms / 1e3 / max(elapsed, 1e-9)))
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        for _ in range(number):
            call()
        cpu.append((time.thread_time() - start_cpu) / number * 1e6)
        wall.append((time.perf_counter() - start) / number * 1e6)
    return {"us": statistics.median(wall), "cpu_us": statistics.median(cpu), "value": value, "number": number}


def worker(worktree, repeats, sample_ms, only, calls):
    import lossengine as le

    where = Path(le.__file__).resolve()
    assert Path(worktree).resolve() in where.parents, f"lossengine imported from {where}, not {worktree}"
    cases = [c for c in CASES if not only or c[0] == only]
    if calls is not None:                         # for perf stat: the calls alone, nothing timed
        threads, call = make_call(cases[0])
        le.set_num_threads(threads)
        for _ in range(calls):
            call()
        return
    from lossengine import _elementwise

    flags = _elementwise.compile_flags() if hasattr(_elementwise, "compile_flags") else ["unknown"]
    results = {c[0]: time_case(c, repeats, sample_ms) for c in cases}
    print(json.dumps({"file": str(where), "flags": flags, "results": results}))


# -- the driver --------------------------------------------------------------------------------------
def git(*args, cwd=REPO):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def build(commit, native):
    sha = git("rev-parse", "--verify", f"{commit}^{{commit}}")
    builds = BUILDS.with_name(BUILDS.name + "-native") if native else BUILDS
    tree = builds / sha
    if not (tree / "setup.py").exists():
        builds.mkdir(parents=True, exist_ok=True)
        git("worktree", "add", "--detach", "--force", str(tree), sha)
    log = builds / f"build-{sha}.log"
    start = time.monotonic()
    with open(log, "w") as out:
        done = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-j", "2"], cwd=tree,
                              env={**os.environ, **({} if native else BUILD_ENV)}, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"building {commit} ({sha[:10]}) failed; see {log}")
    print(f"built {commit} ({sha[:10]}) in {time.monotonic() - start:.0f} s", file=sys.stderr)
    return sha, tree


def worker_command(tree, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LOSSENGINE_ISA")}
    env.update(PYTHONPATH=str(tree), OMP_NUM_THREADS="2")
    return [sys.executable, str(Path(__file__).resolve()), "--worker", str(tree), *args], env


def run_worker(tree, args):
    cmd, env = worker_command(tree, "--repeats", str(args.repeats), "--sample-ms", str(args.sample_ms))
    done = subprocess.run(cmd, cwd="/", env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"worker in {tree} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def count_instructions(cmd, env):
    """User-mode instructions of one run: perf stat where the machine has hardware counters, else
    valgrind's callgrind (deterministic, about 50x slower)."""
    done = subprocess.run(["perf", "stat", "-x,", "-e", "instructions:u", *cmd], cwd="/", env=env,
                          capture_output=True, text=True)
    field = next((line.split(",")[0] for line in done.stderr.splitlines() if "instructions" in line), "")
    if field.isdigit():
        return int(field), "perf"
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd], cwd="/",
                          env=env, capture_output=True, text=True)
    line = next((line for line in done.stderr.splitlines() if "Collected :" in line), None)
    if done.returncode or line is None:
        sys.exit(f"counting instructions failed:\n{done.stderr[-2000:]}")
    return int(line.split(":")[-1]), "callgrind"


def instructions(tree, label, calls):
    """Instructions per call: a run of `calls` calls minus a run of none."""
    cmd, env = worker_command(tree, "--only", label, "--calls", str(calls))
    env["PYTHONHASHSEED"] = "0"
    (with_calls, tool), (without, _) = count_instructions(cmd, env), count_instructions(cmd[:-1] + ["0"], env)
    return (with_calls - without) / calls, tool


def table(builds, names, runs, key, labels):
    """Markdown: per case the median over rounds of each build's per-process median of `key`, the
    ratios to the first build, and the largest (max - min) / median over rounds of any build."""
    head = ["case"] + [f"{n} µs" for n in names] + [f"{n} / {names[0].split()[0]}" for n in names[1:]]
    lines = ["| " + " | ".join(head + ["spread"]) + " |", "|" + "---|" * (len(head) + 1)]
    for label in labels:
        per_build, spread = [], 0.0
        for _, sha, _ in builds:
            us = [run[label][key] for run in runs[sha]]
            per_build.append(statistics.median(us))
            spread = max(spread, (max(us) - min(us)) / per_build[-1])
        cells = [f"{us:.1f}" if us >= 10 else f"{us:.2f}" for us in per_build]
        ratios = [f"{us / per_build[0]:.3f}" for us in per_build[1:]]
        lines.append("| " + " | ".join([label, *cells, *ratios, f"{spread:.0%}"]) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commits", nargs="*", default=list(DEFAULT_COMMITS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=9, help="samples per case in each worker")
    parser.add_argument("--sample-ms", type=float, default=8.0, help="length of one sample")
    parser.add_argument("--instructions", action="store_true", help="perf stat -e instructions:u too")
    parser.add_argument("--native", action="store_true", help="each commit's default build (see above)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.repeats, args.sample_ms, args.only, args.calls)

    if args.native and args.instructions:
        parser.error("--instructions counts the baseline builds only (callgrind cannot run the AVX-512 "
                     "code of --native builds)")
    builds = [(commit, *build(commit, args.native)) for commit in args.commits]
    runs = {sha: [] for _, sha, _ in builds}
    flags = {}
    for r in range(args.rounds):
        for commit, sha, tree in builds:
            out = run_worker(tree, args)
            flags[sha] = out["flags"]
            runs[sha].append(out["results"])
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    names = [f"{commit} ({sha[:7]})" for commit, sha, _ in builds]
    print(f"{args.rounds} rounds x {len(builds)} builds, {args.repeats} samples of ~{args.sample_ms:g} ms "
          f"per case and process; python {sys.version.split()[0]}\n")
    for name, (_, sha, _) in zip(names, builds):
        print(f"- {name}: {' '.join(flags[sha])}")
    print()
    print(table(builds, names, runs, "us", [c[0] for c in CASES]))
    print("\nThe same workers' thread CPU time (time.thread_time: not counting time the thread was "
          "descheduled), one-thread cases:\n")
    print(table(builds, names, runs, "cpu_us", [c[0] for c in CASES if c[-1] == 1]))
    mismatches = []
    for label, *_ in CASES:
        values = [runs[sha][0][label]["value"] for _, sha, _ in builds]
        if max(values) - min(values) > 1e-5 * max(1.0, abs(values[0])):
            mismatches.append(f"{label}: {values}")
    for line in mismatches:
        print(f"\nvalues differ between builds: {line}")

    if args.instructions:
        from concurrent.futures import ThreadPoolExecutor

        jobs = [(label, tree) for label in INSTRUCTION_CASES for _, _, tree in builds]
        with ThreadPoolExecutor(2) as pool:       # counts, not times: two at once is fine
            counts = list(pool.map(lambda job: instructions(job[1], job[0], 20 if "4096" in job[0] else 2000),
                                   jobs))
        print(f"\ninstructions per call ({counts[0][1]}; a run of the calls minus a run without them)\n")
        print("| case | " + " | ".join(names) + " | " + " | ".join(f"{n} / {names[0].split()[0]}" for n in names[1:])
              + " |")
        print("|" + "---|" * (2 * len(names)))
        for i, label in enumerate(INSTRUCTION_CASES):
            row = [c for c, _ in counts[i * len(builds):(i + 1) * len(builds)]]
            print(f"| {label} | " + " | ".join(f"{c:,.0f}" for c in row) + " | "
                  + " | ".join(f"{c / row[0]:.3f}" for c in row[1:]) + " |")


if __name__ == "__main__":
    main()
