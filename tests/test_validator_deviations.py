"""Per-loss declared deviations: each one is a documented string, and each is what a test's exclusion
cites (``deviations["key"]``), so no test excludes a case the loss does not declare."""
import re
from pathlib import Path

import pytest

import lossengine as le

TESTS = Path(__file__).resolve().parent


def _declared():
    return [(name, key, text) for name in le.registry.names()
            for key, text in le.registry.get(name).deviations.items()]


def test_deviations_are_documented_strings():
    declared = _declared()
    assert ("soft_margin_loss", "torch_overflow") in {(n, k) for n, k, _ in declared}
    for name, key, text in declared:
        assert key.isidentifier() and isinstance(text, str) and len(text) > 20, (name, key)


@pytest.mark.parametrize("name,key", [(n, k) for n, k, _ in _declared()])
def test_every_declared_deviation_is_cited_by_a_test(name, key):
    cls = le.registry.get(name).__name__
    sources = "\n".join(p.read_text() for p in TESTS.glob("test_*.py") if p.name != Path(__file__).name)
    assert re.search(rf"{cls}\.deviations\[[\"']{key}[\"']\]", sources), f"no test cites {cls}.deviations[{key!r}]"


def test_xfail_reasons_come_from_declarations():
    # An exclusion written as a free-standing string instead of a declaration would be ad hoc.
    for path in TESTS.glob("test_*.py"):
        if re.search(r"xfail\([^)]*reason=\(\s*\"deliberate", path.read_text()):
            pytest.fail(f"{path.name}: a deliberate deviation stated in the test, not declared on the loss")
