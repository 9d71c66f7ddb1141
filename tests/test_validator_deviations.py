"""Per-loss declared deviations: each one is a documented string, and each is what a test's exclusion
cites (``deviations["key"]``), so no test excludes a case the loss does not declare."""
import ast
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


def _xfail_marks():
    """(file, the test function's name or None, the xfail call) for every ``xfail(...)`` in the tests."""
    for path in sorted(TESTS.glob("*.py")):
        tree = ast.parse(path.read_text())
        owners = {id(call): node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                  for dec in node.decorator_list for call in ast.walk(dec)}
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and getattr(call.func, "attr", getattr(call.func, "id", None)) == "xfail":
                yield path.name, owners.get(id(call)), call


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_every_xfail_is_strict_names_its_exception_and_cites_a_declaration():
    # An xfail that is not strict passes when the defect is fixed; one without raises= passes on any
    # error (a typo, a missing import); a reason typed into the test is an exclusion nobody declared.
    marks = list(_xfail_marks())
    assert marks, "no xfail found: the scan is broken"
    for file, test, call in marks:
        where = f"{file}:{call.lineno} ({test})"
        assert test is not None and isinstance(call.func, ast.Attribute), f"{where}: xfail outside a decorator"
        strict = _keyword(call, "strict")
        assert isinstance(strict, ast.Constant) and strict.value is True, f"{where}: xfail without strict=True"
        assert _keyword(call, "raises") is not None, f"{where}: xfail without raises="
        reason = ast.unparse(_keyword(call, "reason") or ast.Constant(""))
        assert ".deviations[" in reason or "KNOWN_DEFECTS[" in reason, (
            f"{where}: the reason {reason} is not a declared deviation or a KNOWN_DEFECTS entry")


def test_every_known_defect_has_its_strict_xfail():
    # reliability_cases.KNOWN_DEFECTS makes the properties skip cases; each entry is shown by a test
    # of its name, a strict xfail, so the skip ends when the library changes.
    from reliability_cases import KNOWN_DEFECTS
    xfailed = {test for _, test, _ in _xfail_marks()}
    for key in KNOWN_DEFECTS:
        assert f"test_{key}" in xfailed, f"KNOWN_DEFECTS[{key!r}] has no strict xfail test named test_{key}"
