"""Checks shared by the template tests of the families whose losses live in pyx/<family>_losses.pxi
(tests/test_elementwise_template.py, tests/test_classification_template.py, issue #29)."""
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def assert_row_refused(setup_py, losses: Path, tmp_path: Path, row: str, message: str):
    """setup.py's loss_rows stops the build on ``row``, appended to a copy of ``losses``, with
    ``message``, naming the file and the row's line."""
    copy = tmp_path / losses.name
    copy.write_text(losses.read_text() + "\n\n" + row + "\n")
    line = len(losses.read_text().split("\n")) + 2
    with pytest.raises(SystemExit) as raised:
        setup_py["loss_rows"](copy)
    assert message in str(raised.value)
    assert str(raised.value).startswith(f"{losses.name}:{line}: ")


def assert_the_include_is_tracked(family: str):
    """cythonize's dependency tracking follows the driver's include to the losses file, so a change to
    the math alone (the rendered .pyx unchanged) still regenerates the C."""
    from Cython.Build.Dependencies import create_dependency_tree
    from Cython.Compiler.Main import Context

    pyx = ROOT / "pyx" / f"{family}.pyx"
    if not pyx.exists():
        pytest.skip(f"pyx/{family}.pyx is rendered by the build")
    tree = create_dependency_tree(Context([str(ROOT / "pyx"), str(ROOT)], {}, options=None))
    losses = ROOT / "pyx" / f"{family}_losses.pxi"
    assert str(losses) in {str(Path(p).resolve()) for p in tree.all_dependencies(str(pyx))}


def render_with(setup_py, tmp_path: Path, family: str, extra: str) -> tuple:
    """(the rendered driver, the rendered type stub) of a copy of the family's sources under tmp_path
    whose losses file has ``extra`` appended: what setup.py's render_templates makes of a new loss."""
    (tmp_path / "pyx").mkdir()
    (tmp_path / "lossengine").mkdir()
    shutil.copy(ROOT / "pyx" / f"{family}.pyx.tp", tmp_path / "pyx")
    shutil.copy(ROOT / "lossengine" / f"_{family}.pyi.tp", tmp_path / "lossengine")
    losses = f"{family}_losses.pxi"
    (tmp_path / "pyx" / losses).write_text((ROOT / "pyx" / losses).read_text() + extra)
    render = setup_py["render_templates"]
    render.__globals__["HERE"] = tmp_path
    try:
        render()
    finally:
        render.__globals__["HERE"] = ROOT
    return (tmp_path / "pyx" / f"{family}.pyx").read_text(), (tmp_path / "lossengine" / f"_{family}.pyi").read_text()


def fused_members(pyx: str, fused: str) -> list:
    """The member lines of the rendered driver's ``ctypedef fused <fused>:``."""
    return pyx.split(f"ctypedef fused {fused}:\n", 1)[1].split("\n\n", 1)[0].split("\n")


def assert_renders(setup_py, tmp_path: Path, family: str, extra: str, pieces, fused: tuple, stub_entry: str):
    """``extra`` appended to the family's losses file renders each of ``pieces`` into the driver, the
    member ``fused[1]`` of its fused type ``fused[0]`` and ``stub_entry`` into the type stub."""
    pyx, stub = render_with(setup_py, tmp_path, family, extra)
    for generated in pieces:
        assert generated in pyx, generated
    assert fused[1] in fused_members(pyx, fused[0])
    assert stub_entry in stub
