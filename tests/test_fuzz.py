"""A bounded run of the atheris fuzz harness (fuzz/fuzz_losses.py) over its committed corpus: every
registered loss, raw bytes -> options, arrays, layouts, grad_output, wrt -> a kernel call. A crash,
an exception other than ValueError/TypeError/IndexError, or a modified input fails it (libFuzzer
saves the input as crash-*, which replays with `python fuzz/fuzz_losses.py <file>`)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "fuzz" / "fuzz_losses.py"
CORPUS = ROOT / "fuzz" / "corpus"
RUNS = int(os.environ.get("LOSSENGINE_FUZZ_RUNS", "3000"))


@pytest.mark.skipif(not HARNESS.exists(), reason="the fuzz harness is not in this tree (an installed copy)")
def test_fuzz_harness_bounded_run(tmp_path):
    # New inputs go to the scratch directory given first; the committed corpus is only read.
    proc = subprocess.run(
        [sys.executable, str(HARNESS), f"-runs={RUNS}", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1",
         str(tmp_path), str(CORPUS)],
        capture_output=True, text=True, timeout=600)
    tail = proc.stderr[-3000:]
    assert proc.returncode == 0, tail
    assert f"Done {RUNS} runs" in proc.stderr, tail
    assert len(list(CORPUS.iterdir())) > 0
