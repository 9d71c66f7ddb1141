"""The README's example runs and does what it says."""
import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_logistic_regression_example_trains():
    example = next(b for b in _python_blocks() if "logistic" in b.lower() or "forward_backward(logits" in b)
    namespace = {}
    exec(compile(example, "README example", "exec"), namespace)
    # The example's own claim, checked against an independent NumPy computation of the same loss.
    logits = namespace["X"] @ namespace["w"] + namespace["b"]
    y = namespace["y"]
    numpy_loss = np.mean(np.logaddexp(0, logits) - y * logits)
    assert namespace["accuracy"] > 0.95
    assert abs(float(namespace["loss"]) - numpy_loss) < 0.01  # loss is from the last step, before the update
    claimed = re.search(r"# loss ([0-9.]+), accuracy ([0-9.]+)", example)
    assert claimed, "the example states its output"
    assert abs(float(claimed.group(2)) - namespace["accuracy"]) < 1e-9
    assert abs(float(claimed.group(1)) - float(namespace["loss"])) < 5e-5


def test_loss_table_is_generated_from_the_declarations():
    """The README's loss table is ``lossengine.losses.loss_table_markdown()``: a declaration change
    that is not reflected in the README fails here (regenerate the table with that function)."""
    from lossengine.losses import loss_table_markdown

    assert loss_table_markdown() in README.read_text()


def _block_containing(text: str) -> str:
    return next(b for b in _python_blocks() if text in b)


def test_jax_training_example_prints_what_it_claims(capsys):
    import pytest
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    example = _block_containing("from lossengine.integrations.jax import wrap")
    exec(compile(example, "README JAX example", "exec"), {})
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    claimed = re.search(r"# (loss [0-9.]+, accuracy [0-9.]+)", example).group(1)
    assert printed == claimed


def test_dask_cluster_example_prints_what_it_claims(tmp_path):
    import os
    import subprocess
    import sys

    import pytest
    pytest.importorskip("dask.distributed")
    example = _block_containing("from lossengine.integrations import dask as led")
    script = tmp_path / "dask_example.py"           # a file: the cluster's worker processes import it
    script.write_text(example)
    env = {**os.environ, "PYTHONPATH": str(Path(__import__("lossengine").__file__).parents[1])}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    claimed = re.search(r"# (loss [0-9.]+, gradient .*)", example).group(1)
    assert out.stdout.strip().splitlines()[-1] == claimed
