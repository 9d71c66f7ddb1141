"""docs/plugins.md's Python examples run, and every loss they define passes the validator."""
import inspect
import re
from pathlib import Path

import lossengine as le
from lossengine._scaffold import class_name

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def _blocks():
    # Blocks importing from their package (the Cython route's `from ._kernel import ...`) need the
    # built plugin; tests/test_plugins.py covers that route through plugins/lossengine-pseudohuber.
    return [b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S) if "from ." not in b]


def test_plugin_doc_examples_run_and_pass_the_validator():
    namespace = {"__name__": "plugins_md"}
    blocks = _blocks()
    assert len(blocks) >= 3
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/plugins.md python block {i}", "exec"), namespace)
    losses = [v for v in namespace.values()
              if isinstance(v, type) and issubclass(v, le.Loss) and v.__module__ == "plugins_md"]
    assert {c.__name__ for c in losses} >= {"PseudoHuberLoss", "WeightedLogLoss"}
    for cls in losses:
        assert le.check(cls).ok, str(le.check(cls))
    tests = [f for n, f in namespace.items() if n.startswith("test_") and callable(f)
             and not inspect.signature(f).parameters]
    assert tests
    for test in tests:
        test()


def test_generator_commands_in_the_doc_match_the_generator():
    text = DOC.read_text()
    assert f"lossengine_myloss:{class_name('myloss')}" in text


def test_row_route_doc_example_builds_and_runs(tmp_path):
    """Route 2b's Cython row function and class, built as the doc says (against this checkout's
    .pxd and flags), pass the validator and equal cross-entropy on the margin-shifted scores."""
    import os
    import subprocess
    import sys

    section = DOC.read_text().split("## Route 2b", 1)[1].split("\n## ", 1)[0]
    kernel = re.search(r"```cython\n(.*?)```", section, flags=re.S).group(1)
    module = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    package = tmp_path / "le_doc_rows"
    package.mkdir()
    (package / "_kernel.pyx").write_text(kernel)
    (package / "__init__.py").write_text(module)
    # The lossengine under test (site-packages when installed, this checkout when built in place):
    # never the unbuilt source folder, which would shadow it.
    root = Path(__import__("lossengine").__file__).resolve().parents[1]
    (tmp_path / "setup.py").write_text(
        "import lossengine\nfrom Cython.Build import cythonize\nfrom setuptools import Extension, setup\n"
        "o = lossengine.plugin_build_options()\n"
        "setup(ext_modules=cythonize([Extension('le_doc_rows._kernel', ['le_doc_rows/_kernel.pyx'], "
        "extra_compile_args=o['extra_compile_args'], extra_link_args=o['extra_link_args'])], "
        "include_path=o['include_path'], compiler_directives={'language_level': 3}))\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{root}"}
    build = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    code = """
import numpy as np, lossengine as le
from le_doc_rows import MarginSoftmaxLoss as L
report = le.check(L)
assert report.ok, str(report)
rng = np.random.default_rng(0)
x, t, w = rng.uniform(-1, 1, (30, 5)), rng.integers(0, 5, 30), rng.uniform(0.5, 2, 5)
value, grad = L(weight=w, ignore_index=1).forward_backward(x, t)
z = 30.0 * (x - 0.35 * np.eye(5)[t])
ref_value, ref_grad = le.CrossEntropyLoss(weight=w, ignore_index=1).forward_backward(z, t)
np.testing.assert_allclose(value, ref_value, rtol=1e-12)
np.testing.assert_allclose(grad, 30.0 * ref_grad, rtol=1e-11, atol=1e-14)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr
