"""`lossengine bench` as a user runs it: subprocess calls of the command (tiny sizes and --repeat, so
they are quick; nothing here asserts a timing), plus the run's guarantees checked in-process: peers are
checked against lossengine before they are timed, JAX's 64-bit mode does not leak, every case is
selectable."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lossengine import bench
from lossengine.bench import cases as bench_cases, formulas, peers

# Where the lossengine under test lives (this checkout built in place, or site-packages when
# installed): a child Python must import that one, never an unbuilt source folder.
ROOT = Path(__import__("lossengine").__file__).resolve().parents[1]


def run_bench(*args: str, block: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`lossengine bench ARGS` in a child Python using this checkout, with the modules in ``block``
    made unimportable (as if not installed)."""
    # A finder refusing the blocked names (sys.modules[name] = None would break libraries that probe
    # sys.modules for torch, as scipy does).
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            f"        if name.split('.')[0] in {set(block)!r}:\n"
            "            raise ImportError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "from lossengine.cli import main\n"
            "sys.argv = ['lossengine'] + sys.argv[1:]\n"
            "sys.exit(main())\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", code, "bench", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


def quick(*args: str) -> tuple[str, ...]:
    return ("--repeat", "3", "--quiet") + args


def test_json_holds_every_number(tmp_path):
    out = tmp_path / "bench.json"
    proc = run_bench("mse_loss", "cross_entropy", *quick("--sizes", "200,3000", "--compare", "numpy",
                                                        "--json", str(out)))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["dtype"] == "float32" and report["peers"] == ["numpy"]
    assert report["arguments"]["sizes"] == "200,3000" and report["arguments"]["names"] == ["mse_loss", "cross_entropy"]
    assert "lossengine" in report["threads"] and "numpy" in report["threads"]
    labels = [(c["label"], tuple(c["shape"])) for c in report["cases"]]
    # cross_entropy: its plain and label-smoothing cases; an element count becomes (count // 100, 100)
    assert labels == [("MSELoss", (200,)), ("MSELoss", (3000,)), ("CrossEntropyLoss", (2, 100)),
                      ("CrossEntropyLoss", (30, 100)), ("CrossEntropyLoss(label_smoothing=0.1)", (2, 100)),
                      ("CrossEntropyLoss(label_smoothing=0.1)", (30, 100))]
    for case in report["cases"]:
        assert set(case["results"]) == {"lossengine", "numpy"}
        for r in case["results"].values():
            assert len(r["samples"]) == r["calls"] >= 3
            assert r["min"] <= r["q1"] <= r["median"] <= r["q3"] <= r["max"]
            assert r["median"] == pytest.approx(float(np.median(r["samples"])))
        assert case["fastest_peer"] == "numpy"
        assert case["ratio"] == pytest.approx(case["results"]["numpy"]["median"] / case["results"]["lossengine"]["median"])
    ce = report["cases"][2]
    assert ce["inputs"] == [{"name": "input", "shape": [2, 100], "dtype": "float32"},
                            {"name": "target", "shape": [2], "dtype": "int64"}]
    # the table names the engines, the cases and the shapes of their inputs
    assert "lossengine" in proc.stdout and "CrossEntropyLoss(label_smoothing=0.1)" in proc.stdout
    assert "input (N, 100) float32, target (N,) int64" in proc.stdout
    assert "MSELoss: input (N,) float32, target (N,) float32" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (("nonexistent",), "no loss named 'nonexistent'"),
    (("--sizes", "abc"), "--sizes: 'abc' is not"),
    (("--sizes", "0"), "--sizes: '0' is not"),
    (("--sizes", "1.5"), "--sizes: '1.5' is not"),
    (("cross_entropy", "--sizes", "10x10x10"), "cross_entropy takes shapes like 65536x100, got 10x10x10"),
    (("mse_loss", "--sizes", "10x10"), "mse_loss takes element counts, got 10x10"),
    (("--dtype", "float16"), "--dtype: expected float32 or float64, got 'float16'"),
    (("--compare", "torch,tensorflow"), "--compare: unknown peer 'tensorflow'"),
    (("--repeat", "x"), "--repeat: expected a positive integer, got 'x'"),
    (("--threads", "0"), "--threads: expected a positive integer, got '0'"),
    (("--threads", "5000"), "--threads: expected at most 1024, got 5000"),
    (("--json", "/nonexistent-folder/b.json"), "--json: cannot write '/nonexistent-folder/b.json'"),
    (("--plot", "/"), "--plot: '/' is a folder; expected a file path"),
    (("mse_loss", "--sizes", "300,4x50"), "--sizes: 4x50 fits none of the losses asked (mse_loss)"),
    (("mse_loss", "--baseline", "nope"), "--baseline: no loss named 'nope'"),
    (("mse_loss", "--baseline", "cross_entropy"),
     "--baseline: cross_entropy takes 2-D shapes, but mse_loss takes element counts"),
    (("--no-such-flag",), "unrecognized arguments: --no-such-flag"),
    (("--sizes",), "argument --sizes: expected one argument"),
])
def test_bad_arguments_give_one_line_and_exit_2(args, message):
    proc = run_bench(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lossengine bench: error: "), proc.stderr
    assert message in lines[0]


def test_missing_peers_are_skipped_with_a_note(tmp_path):
    out = tmp_path / "b.json"
    proc = run_bench("binary_cross_entropy", *quick("--sizes", "100", "--compare", "torch,sklearn,numpy",
                                                     "--json", str(out)),
                     block=("torch",))
    assert proc.returncode == 0, proc.stderr
    skipped = proc.stdout.split("\nskipped:\n")[1]
    assert "torch: not installed" in skipped
    # scikit-learn has no BCE on probabilities (whether or not it is installed, the line says why)
    assert "sklearn: " in skipped
    report = json.loads(out.read_text())
    assert "torch" in report["unavailable_peers"]
    assert set(report["cases"][0]["skipped"]) == {"torch", "sklearn"}
    assert set(report["cases"][0]["results"]) == {"lossengine", "numpy"}
    assert "torch" not in report["threads"]


def test_a_registered_loss_without_a_declared_case_still_runs():
    proc = run_bench("KLDivLoss", *quick("--sizes", "120", "--compare", "numpy"))
    assert proc.returncode == 0, proc.stderr
    assert "numpy: no implementation declared in lossengine.bench.CASES [KLDivLoss 10x3x4]" in proc.stdout  # 120 elements of its sample shape
    assert "KLDivLoss" in proc.stdout


def test_progress_goes_to_stderr():
    proc = run_bench("l1_loss", "--sizes", "100,200", "--repeat", "3", "--compare", "numpy", "--markdown")
    assert proc.returncode == 0, proc.stderr
    assert "\n| case | size | lossengine | numpy | fastest peer | ratio |\n|---|---|---|---|---|---|\n| L1Loss | 100 |" in proc.stdout
    assert "[1/2] L1Loss 100" in proc.stderr and "[2/2] L1Loss 200" in proc.stderr
    assert "[1/2]" not in proc.stdout


def test_threads_are_applied_and_reported(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "b.json"
    proc = run_bench("mse_loss", *quick("--sizes", "100", "--threads", "1", "--compare", "torch,numpy",
                                        "--json", str(out)))
    assert proc.returncode == 0, proc.stderr
    threads = json.loads(out.read_text())["threads"]
    assert threads["lossengine"] == "1" and threads["torch"] == "1"
    assert "threads: lossengine 1, torch 1, numpy 1" in proc.stdout


def test_every_peer_at_a_tiny_size(tmp_path):
    """Each installed peer runs and agrees with lossengine on every quick case."""
    out = tmp_path / "b.json"
    proc = run_bench(*quick("--sizes", "300", "--json", str(out)))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    installed = [p for p in bench.PEERS if peers.installed(p) is None]
    assert sorted(report["peers"]) == sorted(bench.PEERS)
    for case in report["cases"]:
        assert "error" not in case
        for peer in installed:
            why = case["skipped"].get(peer, "")
            assert peer in case["results"] or "no " in why or "has no" in why or "takes logits" in why, (case["label"], why)
            assert "disagrees" not in why and "failed" not in why
    assert {c["loss"] for c in report["cases"]} == {c.loss for c in bench.CASES if c.quick}


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "b.png"
    proc = run_bench("l1_loss", "huber_loss", *quick("--sizes", "100,1000", "--compare", "numpy", "--plot", str(png)))
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_one_line_error(tmp_path):
    proc = run_bench("l1_loss", "--plot", str(tmp_path / "b.png"), block=("matplotlib",))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "lossengine bench: error: --plot needs matplotlib: pip install 'lossengine[plot]'"
    assert not (tmp_path / "b.png").exists()


# -- in-process: the run's guarantees ------------------------------------------------------------------
def test_a_peer_that_disagrees_is_skipped_not_timed():
    wrong = bench.Case("mse_loss", bench_cases._pair(bench_cases._normal, bench_cases._normal), sizes=(50,), torch=None,
                       numpy=peers.numpy_peer(lambda o, x, y: (formulas.mse_np(o, x, y)[0] * 1.01, formulas.mse_np(o, x, y)[1])))
    p = bench.prepare(wrong, (50,), np.float64, peers=("numpy",))
    assert "numpy" not in p.engines
    assert p.skipped["numpy"].startswith("disagrees with lossengine")
    half = bench.Case("mse_loss", bench_cases._pair(bench_cases._normal, bench_cases._normal), sizes=(50,),
                      numpy=peers.numpy_peer(lambda o, x, y: (formulas.mse_np(o, x, y)[0], formulas.mse_np(o, x, y)[1] / 2)))
    p = bench.prepare(half, (50,), np.float64, peers=("numpy",))
    assert p.skipped["numpy"].startswith("disagrees with lossengine (gradient")


def test_sklearn_half_losses_are_compared_with_their_factor():
    pytest.importorskip("sklearn")
    case = next(c for c in bench.CASES if c.loss == "mse_loss")
    for dtype in (np.float32, np.float64):
        p = bench.prepare(case, (1000,), dtype, peers=("sklearn",))
        assert "sklearn" in p.engines, p.skipped
    unscaled = bench.Case("mse_loss", case.inputs, sklearn=peers.sklearn_peer(peers.sklearn_loss("HalfSquaredError")))
    assert "disagrees" in bench.prepare(unscaled, (1000,), np.float64, peers=("sklearn",)).skipped["sklearn"]


def test_jax_float64_mode_is_enabled_for_the_run_only():
    jax = pytest.importorskip("jax")
    before = jax.config.jax_enable_x64
    case = next(c for c in bench.CASES if c.loss == "mse_loss")
    report = bench.run_benchmarks([case], sizes=[64], dtype=np.float64, peers=("jax",), repeat=3)
    assert set(report["cases"][0]["results"]) == {"lossengine", "jax"}
    assert jax.config.jax_enable_x64 == before
    # outside the run, 32-bit JAX cannot compute in float64: said, not timed
    if not before:
        p = bench.prepare(case, (64,), np.float64, peers=("jax",))
        assert p.skipped["jax"] == "JAX computes in float32 (64-bit mode off)"


def test_unregistered_cases_are_skipped_with_a_note(monkeypatch):
    future = bench.Case("future_margin_loss", sizes=(10,))
    monkeypatch.setattr(bench_cases, "CASES", bench_cases.CASES + [future])
    cases, notes = bench.select_cases([])
    assert future not in cases
    assert "future_margin_loss: not registered in this build, skipped" in notes
    with pytest.raises(ValueError, match="no loss named 'nope'"):
        bench.select_cases(["nope"])
    cases, notes = bench.select_cases(["future_margin_loss"])
    assert cases == [] and notes == ["future_margin_loss: not registered in this build, skipped"]


def test_all_selects_every_case_and_every_registered_loss():
    import lossengine as le

    cases, _ = bench.select_cases(["all"])
    assert {c.loss for c in cases} == set(le.registry.names())
    assert len([c for c in cases if c.loss == "cross_entropy"]) == 2
    by_class, _ = bench.select_cases(["CrossEntropyLoss"])
    assert [c.options for c in by_class] == [{}, {"label_smoothing": 0.1}]


def test_summary_statistics():
    s = bench.summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["median"] == 3.0 and s["q1"] == 2.0 and s["q3"] == 4.0 and s["spread"] == pytest.approx(2 / 3)
    assert s["min"] == 1.0 and s["max"] == 100.0 and s["calls"] == 5
    assert bench.summarize([2.0])["spread"] == 0.0


def test_each_family_takes_its_own_sizes(tmp_path):
    # element counts go to the elementwise case, rows x classes to cross-entropy: one run, no reshaping
    out = tmp_path / "b.json"
    proc = run_bench("mse_loss", "cross_entropy", *quick("--sizes", "300,4x50", "--compare", "numpy",
                                                        "--json", str(out)))
    assert proc.returncode == 0, proc.stderr
    shapes = [(c["label"], c["shape"]) for c in json.loads(out.read_text())["cases"]]
    assert shapes == [("MSELoss", [300]), ("CrossEntropyLoss", [4, 50]),
                      ("CrossEntropyLoss(label_smoothing=0.1)", [4, 50])]
    assert "scaled" not in proc.stdout


def test_counts_given_to_a_shaped_case_are_scaled_with_a_note():
    proc = run_bench("cross_entropy", *quick("--sizes", "300", "--compare", "numpy"))
    assert proc.returncode == 0, proc.stderr
    assert "CrossEntropyLoss: element counts 300 scaled to its 2-D shapes 3x100" in proc.stdout


def test_any_loss_can_be_the_baseline(tmp_path):
    # --baseline times the named loss (lossengine computing it) beside each case, at the same size
    out = tmp_path / "b.json"
    proc = run_bench("l1_loss", *quick("--sizes", "300", "--compare", "numpy", "--baseline", "mse_loss",
                                       "--json", str(out)))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["baseline"] == "MSELoss"
    (row,) = report["cases"]
    assert set(row["results"]) == {"lossengine", "numpy", "baseline"}
    assert row["results"]["baseline"]["calls"] >= 3
    assert row["baseline_ratio"] == pytest.approx(row["results"]["baseline"]["median"]
                                                  / row["results"]["lossengine"]["median"])
    assert row["fastest_peer"] == "numpy"       # the baseline is not a peer
    assert "vs MSELoss" in proc.stdout


def test_output_paths_are_checked_before_the_run_and_left_as_found(tmp_path):
    target = tmp_path / "b.json"
    proc = run_bench("mse_loss", *quick("--sizes", "100", "--compare", "numpy", "--json", str(target),
                                        "--plot", str(tmp_path / "missing" / "b.png")))
    assert proc.returncode == 2 and proc.stdout == ""
    assert "--plot: cannot write" in proc.stderr
    assert not target.exists()      # the writability probe of --json removed the file it created


def test_roofline_counts_bytes_and_compares_with_a_plus_b(tmp_path):
    out = tmp_path / "b.json"
    # KLDivLoss has no declared case: the bytes are counted from whatever arrays its case makes
    proc = run_bench("mse_loss", "KLDivLoss", *quick("--sizes", "3000", "--compare", "numpy", "--threads", "2",
                                                     "--roofline", "--json", str(out)))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["roofline"]["threads"] == 2
    for row in report["cases"]:
        read = sum(np.prod(a["shape"], dtype=int) * np.dtype(a["dtype"]).itemsize for a in row["inputs"])
        gradient = np.prod(row["shape"], dtype=int) * 4          # float32 input gradient, written once
        r = row["roofline"]
        assert r["read"] == read and r["written"] == gradient + 4 and r["total"] == read + gradient + 4
        assert row["out"] is True                              # gradients into arrays allocated once
        # the reference: a + b -> c over (about) the same bytes, both thread counts timed in the run
        assert set(row["results"]) >= {"a+b->c (1 thread)", "a+b->c (2 threads)"}
        assert abs(r["reference"]["bytes"] - r["total"]) <= 12
        ref = row["results"][r["reference"]["engine"]]["median"]
        assert ref == min(row["results"][e]["median"] for e in ("a+b->c (1 thread)", "a+b->c (2 threads)"))
        assert r["bandwidth"] == pytest.approx(r["total"] / row["results"]["lossengine"]["median"])
        assert r["fraction"] == pytest.approx(r["bandwidth"] / (r["reference"]["bytes"] / ref))
        # the reference is not a peer (KLDivLoss has no NumPy peer: no fastest peer at all)
        assert row.get("fastest_peer") == ("numpy" if row["loss"] == "mse_loss" else None)
    assert "bytes/call" in proc.stdout and "of a+b->c" in proc.stdout and "MSELoss" in proc.stdout


def test_bytes_moved_counts_every_input_and_every_gradient():
    from lossengine.bench import roofline

    case = next(c for c in bench.CASES if c.loss == "triplet_margin_loss" and c.wrt == "all")
    p = bench.prepare(case, (64, 8), np.float64, peers=())
    moved = roofline.bytes_moved(p.arrays, p.result)
    assert len(p.result[1]) == 3
    assert moved == {"read": 3 * 64 * 8 * 8, "written": 3 * 64 * 8 * 8 + 8, "total": 6 * 64 * 8 * 8 + 8}


def test_cases_with_every_gradient_agree_with_their_peers():
    pytest.importorskip("torch")
    for case in (c for c in bench.CASES if c.wrt == "all"):
        p = bench.prepare(case, (32, 16), np.float64, peers=("torch",))
        assert "torch" in p.engines, (case.label, p.skipped)
        assert isinstance(p.result[1], tuple) and len(p.result[1]) == len(case.gradient_positions())
    lone = next(c for c in bench.CASES if c.loss == "triplet_margin_loss" and c.wrt == "all")
    wrong = bench.Case(lone.loss, lone.inputs, sizes=lone.sizes, wrt="all",
                       numpy=peers.numpy_peer(lambda o, a, p_, n: (0.0, (a, a))))
    p = bench.prepare(wrong, (8, 4), np.float64, peers=("numpy",))
    assert p.skipped["numpy"].startswith("disagrees with lossengine")


def test_import_lossengine_does_not_import_the_bench_or_its_peers():
    code = ("import sys, lossengine; "
            "print(sorted(m for m in ('lossengine.bench', 'torch', 'jax', 'sklearn') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_loss_without_out_is_timed_allocating_and_said_so(monkeypatch):
    import lossengine as le
    from lossengine.bench import run

    class NoOut(le.MSELoss):
        def forward_backward(self, *arrays, wrt=None):
            return super().forward_backward(*arrays, wrt=wrt)

    monkeypatch.setattr(run, "loss_class", lambda name: NoOut)
    case = next(c for c in bench.CASES if c.loss == "mse_loss")
    p = bench.prepare(case, (100,), np.float64, peers=(), out=True)
    assert p.error is None and p.out is False
    assert "timed without it" in p.skipped["out="]
    assert p.engines["lossengine"]()[1].shape == (100,)
    monkeypatch.undo()
    plain = bench.prepare(case, (100,), np.float64, peers=(), out=True)    # the real MSELoss takes out=
    assert plain.out is True and "out=" not in plain.skipped
