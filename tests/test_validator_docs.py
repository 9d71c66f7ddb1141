"""docs/plugins.md's Python examples run, and every loss they define passes the validator."""
import inspect
import re
from pathlib import Path

import lossengine as le
from lossengine._scaffold import class_name

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def _blocks():
    # Blocks importing from their package (the Cython route's `from ._kernel import ...`) need the
    # built plugin; tests/test_plugins.py covers that route through plugins/lossengine-logcosh.
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
