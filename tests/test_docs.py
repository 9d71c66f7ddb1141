"""The documentation's promises: every built-in loss's docstring has Args (when it has options), Shape,
Hessian and Examples sections and its examples run; every built-in has a generated page and a
hand-written note (docs/loss_notes/); every Python block in the docs runs and prints what it says."""
import doctest
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

import lossengine as le
from lossengine.declaration import declared_options
from lossengine.losses import BUILTIN_LOSSES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _loss_pages():
    spec = importlib.util.spec_from_file_location("loss_pages", DOCS / "loss_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("cls", BUILTIN_LOSSES, ids=lambda c: c.__name__)
def test_builtin_docstring_has_the_sections(cls):
    doc = cls.__doc__
    titles = re.findall(r"^(\w+):$", doc, flags=re.M)
    expected = (["Args"] if declared_options(cls) else []) + ["Shape", "Hessian", "Examples"]
    assert titles == expected, titles
    for option in declared_options(cls):
        assert re.search(rf"^    {option.name} \(", doc, flags=re.M), option.name
    for argument in cls.arguments:
        assert re.search(rf"^    {argument}: ", doc, flags=re.M), argument


@pytest.mark.parametrize("cls", BUILTIN_LOSSES, ids=lambda c: c.__name__)
def test_builtin_docstring_examples_run(cls):
    test = doctest.DocTestParser().get_doctest(cls.__doc__, {}, cls.__name__, None, 0)
    assert len(test.examples) >= 6
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0 and runner.tries == len(test.examples), f"{cls.__name__}'s example failed"


def test_a_broken_declaration_fails_its_example(monkeypatch):
    """The examples' expected output follows from the declaration, not from running the loss: a loss
    whose gradient comes back in the wrong shape fails its own example."""
    cls = le.MSELoss
    monkeypatch.setattr(cls, "forward_backward", lambda self, *a, **k: (np.float64(0.0), np.zeros(1)))
    test = doctest.DocTestParser().get_doctest(cls.__doc__, {}, cls.__name__, None, 0)
    runner = doctest.DocTestRunner()
    runner.run(test, out=lambda text: None)
    assert runner.failures == 1


# -- the page per loss ----------------------------------------------------------------------------
def test_every_registered_builtin_has_a_note_and_a_page():
    module = _loss_pages()
    registered = {le.registry.get(n) for n in le.registry.names() if le.registry.source(n) == "lossengine"}
    assert set(module.builtin_losses()) == registered >= set(BUILTIN_LOSSES)
    pages = module.pages()
    for cls in registered:
        note = module.note_path(cls)
        assert note.exists(), f"{cls.__name__} has no hand-written note: write {note.relative_to(ROOT)}"
        text = note.read_text()
        assert text.startswith("## Math") and all(w in text for w in ("loss:", "gradient", "Hessian")), note
        page = pages[module.page_path(cls)]
        assert text.strip() in page and f"`lossengine.{cls.__name__}`" in page
        for option in declared_options(cls):
            assert f"| `{option.name}` |" in page, (cls.__name__, option.name)
    notes = {p.stem for p in module.NOTES.glob("*.md")}
    assert notes == {cls.name for cls in registered}, "a note for no registered loss"


def test_a_loss_registered_later_gets_a_page_from_the_registry(monkeypatch):
    """The generator reads the registry, not a list: a built-in it has never seen gets a page (with a
    placeholder until its note is written), and the index links it."""
    module = _loss_pages()

    class LaterLoss(le.MSELoss):
        name = "later_loss"

    monkeypatch.setattr(module, "builtin_losses", lambda: [*BUILTIN_LOSSES, LaterLoss])
    pages = module.pages()
    assert "losses/later_loss.md" in pages and "(later_loss.md)" in pages["losses/index.md"]
    assert "No hand-written note yet" in pages["losses/later_loss.md"]


def _doc_pages():
    """Every Markdown page of the site: the hand-written ones under docs/ and the generated ones."""
    written = {str(p.relative_to(DOCS)): p.read_text() for p in DOCS.rglob("*.md")
               if "loss_notes" not in p.parts}
    return {**written, **_loss_pages().pages()}


# Libraries of optional extras: a page's block that imports one skips without it.
_OPTIONAL = {"jax", "optax", "xgboost", "lightgbm", "dask", "distributed"}


def _run_block(block: str, where: str, capsys) -> None:
    """Run one ```python block; lines ``print(...)  # text`` must print ``text``."""
    try:
        exec(compile(block, where, "exec"), {"__name__": "__docs__"})
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in _OPTIONAL:
            pytest.skip(f"{where} needs {exc.name}")
        raise
    claimed = [m.group(1) for m in re.finditer(r"^print\(.*\)  # (.*)$", block, flags=re.M)]
    printed = capsys.readouterr().out.splitlines()
    if claimed:
        assert printed[-len(claimed):] == claimed, f"{where} printed {printed}"


# docs/plugins.md's blocks are run (and their losses validated) by tests/test_validator_docs.py.
_RUN_ELSEWHERE = {"plugins.md"}


def _python_blocks():
    for page, text in sorted(_doc_pages().items()):
        if page in _RUN_ELSEWHERE:
            continue
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.S)):
            yield pytest.param(block, id=f"{page}[{i}]")


@pytest.mark.parametrize("block", list(_python_blocks()))
def test_docs_python_block_runs(block, request, capsys):
    assert "..." not in block, "no placeholders in runnable examples"
    _run_block(block, request.node.callspec.id, capsys)


def test_block_runner_catches_a_wrong_claim(capsys):
    with pytest.raises(AssertionError, match="printed"):
        _run_block("print(1 + 1)  # 3\n", "claim", capsys)


# -- the public stubs -----------------------------------------------------------------------------
def test_committed_stubs_are_what_the_declarations_render():
    from lossengine import _stubgen

    for path, text in _stubgen.stubs().items():
        assert path.exists() and path.read_text() == text, (
            f"{path.name} is stale: run `python -m lossengine._stubgen`")


def test_stubs_type_every_constructor_and_function_from_the_declarations():
    import ast

    from lossengine import _stubgen

    losses_stub = ast.parse(_stubgen.LOSSES_STUB.read_text())
    classes = {n.name: n for n in losses_stub.body if isinstance(n, ast.ClassDef)}
    for cls in BUILTIN_LOSSES:
        init = next(f for f in classes[cls.__name__].body if isinstance(f, ast.FunctionDef))
        params = [a.arg for a in init.args.args[1:] + init.args.kwonlyargs]
        assert params == [o.name for o in declared_options(cls)], cls.__name__
    functional_stub = ast.parse(_stubgen.FUNCTIONAL_STUB.read_text())
    functions = {n.name: n for n in functional_stub.body if isinstance(n, ast.FunctionDef)}
    assert sorted(functions) == sorted(le.functional.__all__)
    for cls in BUILTIN_LOSSES:
        args = functions[cls.name].args
        assert [a.arg for a in args.args][:len(cls.arguments)] == list(cls.arguments), cls.name


def test_functional_exports_functions_only():
    import inspect as _inspect

    exported = dir(le.functional)
    assert exported == sorted(le.functional.__all__)
    assert {"np", "annotations", "HuberLoss", "BUILTIN_LOSSES", "make_functional"}.isdisjoint(exported)
    assert {cls.name for cls in BUILTIN_LOSSES} <= set(exported)
    assert all(_inspect.isfunction(getattr(le.functional, n)) for n in exported)
    assert callable(le.functional.np.asarray) and le.functional.HuberLoss is le.HuberLoss  # still reachable


def test_public_callables_have_docstrings():
    for cls in (le.MSELoss, le.CrossEntropyLoss, le.CTCLoss):
        for method in ("forward", "backward", "forward_backward"):
            assert getattr(cls, method).__doc__, f"{cls.__name__}.{method}"
    for name in le.functional.__all__:
        assert getattr(le.functional, name).__doc__, name
