"""The elementwise family's two source files (issue #29): pyx/elementwise_losses.pxi holds each loss's
row and math, pyx/elementwise.pyx.tp the driver that names no loss. setup.py reads the rows
(``loss_rows``) and renders the driver and the type stub from them (``render_templates``)."""
import inspect
import re
import runpy
from pathlib import Path

import pytest

from _losses_file_checks import assert_renders, assert_row_refused, assert_the_include_is_tracked, render_with
from lossengine import _elementwise

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ROOT / "pyx" / "elementwise_losses.pxi"
if not (ROOT / "setup.py").exists() or not LOSSES.exists():
    pytest.skip("needs the source tree (setup.py and pyx/)", allow_module_level=True)


@pytest.fixture(scope="module")
def setup_py():
    """setup.py's functions, without building (its setup() call runs only as __main__)."""
    return runpy.run_path(str(ROOT / "setup.py"), run_name="lossengine_setup")


def test_the_compiled_module_has_one_kernel_per_row(setup_py):
    rows = setup_py["loss_rows"](LOSSES)
    kernels = {name for name, obj in vars(_elementwise).items()
               if inspect.isclass(obj) and issubclass(obj, _elementwise.ElementwiseKernel)
               and obj is not _elementwise.ElementwiseKernel}
    assert kernels == {row.kernel for row in rows} | {"Plugin"}
    for row in rows:
        cls = getattr(_elementwise, row.kernel)
        kernel = cls.__new__(cls)           # __cinit__ sets the operand count and the entry points
        assert cls.fields == tuple(name for _, name in row.options), row.kernel
        assert kernel.operands == row.operands, row.kernel
        assert kernel.has_hessian == (row.hessian is not None), row.kernel


def test_the_driver_names_no_loss(setup_py):
    """Every loss-specific name is in the losses file: the driver template names none of them."""
    driver = (ROOT / "pyx" / "elementwise.pyx.tp").read_text()
    code = re.sub(r'"""(.*?)"""|#[^\n]*', "", driver, flags=re.S)     # comments may name examples
    assert "PluginOp" in code and "value_and_partials" in code
    for row in setup_py["loss_rows"](LOSSES):
        for name in (row.kernel, row.element, row.hessian, row.domain, row.variant):
            if name is not None:
                assert not re.search(rf"\b{name}(Op)?\b", code), name


CUBE = '''

# -- a loss added as CONTRIBUTING.md says: its row and its math, nothing else -------------------------
#@ loss(kernel="Cube", element="cube", options=[("double", "k")], operands=2, hessian="cube_h",
#@      domain="cube_domain")
cdef inline double cube_h(const CubeOp* op, const double* a, double g, double* d, double* h) noexcept nogil:
    cdef double z = a[0] - a[1]
    d[0] = 3.0 * op.k * z * z * g
    d[1] = -d[0]
    h[0] = 6.0 * op.k * z * g
    return op.k * z * z * z


cdef inline double cube(const CubeOp* op, const double* a, double g, double* d) noexcept nogil:
    cdef double unused
    return cube_h(op, a, g, d, &unused)


cdef inline int cube_domain(const CubeOp* op, const double* a) noexcept nogil:
    return (a[1] != a[1]) << 1
'''


def test_a_new_loss_is_its_row_and_math(tmp_path, setup_py):
    """One row and its functions in the losses file render the option struct, the fused type's member,
    every dispatch branch, both entry points of each mode, the kernel class and the stub entry."""
    pieces = ("cdef struct CubeOp:\n    double k\n",
              "ctypedef fused ElementwiseOp:\n",
              "    elif ElementwiseOp is CubeOp:\n        return cube(op, a, g, d)\n",
              "    elif ElementwiseOp is CubeOp:\n        return cube_h(op, a, g, d, h)\n",
              "    elif ElementwiseOp is CubeOp:\n        return 2\n",
              "    elif ElementwiseOp is CubeOp:\n        return cube_domain(op, a)\n",
              "cdef void _block_Cube_float(", "cdef void _block_Cube_double(",
              "cdef void _hblock_Cube_float(", "cdef void _hblock_Cube_double(",
              "cdef class Cube(ElementwiseKernel):", "        self.hessian_blocks[1] = _hblock_Cube_double\n",
              "    def __init__(self, double k):\n        self.op.k = k\n",
              'include "elementwise_losses.pxi"')
    assert_renders(setup_py, tmp_path, "elementwise", CUBE, pieces, ("ElementwiseOp", "    CubeOp"),
                   "class Cube(ElementwiseKernel):\n    def __init__(self, k: float) -> None: ...")


@pytest.mark.parametrize("row, message", [
    ('#@ loss(kernel="Bad", element="l1", operands=2, colour="red")', "unexpected keyword"),
    ('#@ loss(kernel="Bad", operands=2)', "missing 1 required"),
    ('#@ loss("Bad", element="l1", operands=2)', "not loss"),
    ('#@ loss(kernel="Bad", element="l1", operands=TWO)', "malformed"),
    ('#@ loss(kernel="Bad", element="l1",\n#@      operands=2', "was never closed"),
    ('#@ loss(kernel="Bad", element="nowhere", operands=2)', "element='nowhere', but elementwise_losses.pxi defines no"),
    ('#@ loss(kernel="Bad", element="l1", operands=2, hessian="l1_hh")', "hessian='l1_hh'"),
    ('#@ loss(kernel="Bad", element="l1", operands=5)', "operands=5"),
    ('#@ loss(kernel="Bad", element="l1", operands=2, options=["double k"])', "options of the wrong type"),
    ('#@ loss(kernel="Bad", element="l1", operands=2.0)', "operands of the wrong type"),
    ('#@ loss(kernel="L1", element="l1", operands=2)', "kernel='L1' again (the row at line "),
])
def test_a_bad_row_stops_the_build_naming_its_line(tmp_path, setup_py, row, message):
    assert_row_refused(setup_py, LOSSES, tmp_path, row, message)


def test_editing_the_math_alone_recompiles_the_module():
    assert_the_include_is_tracked("elementwise")


def test_contributing_walkthrough_renders(tmp_path, setup_py):
    """CONTRIBUTING.md's walkthrough, its row and math blocks appended as they are written there, is a
    loss the build accepts: its functions are found and its kernel class rendered."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    steps = text.split("1. **The row**", 1)[1].split("3. **The declaration**", 1)[0]
    code = "\n".join(line[7:] if line.startswith("       ") else "" for line in steps.split("\n"))
    assert code.count("#@ loss(") == 1 and "cdef inline" in code
    pyx, _ = render_with(setup_py, tmp_path, "elementwise", "\n\n" + code.strip() + "\n")
    row = setup_py["loss_rows"](tmp_path / "pyx" / "elementwise_losses.pxi")[-1]
    assert f"cdef class {row.kernel}(ElementwiseKernel):" in pyx and f"cdef struct {row.kernel}Op:" in pyx
    declaration = text.split("3. **The declaration**", 1)[1].split("Nothing else lists it", 1)[0]
    assert f"kernel = _elementwise.{row.kernel}\n" in declaration


def test_rows_are_read_when_annotations_are_strings(setup_py):
    """pip runs setup.py through setuptools.build_meta, whose compile() passes on its own
    `from __future__ import annotations`: the row types' annotations are strings there, and the
    row reader must still type-check the rows (it raised KeyError: ForwardRef('str'))."""
    import __future__

    path = ROOT / "setup.py"
    code = compile(path.read_text(), str(path), "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True)
    namespace = {"__name__": "lossengine_setup", "__file__": str(path)}
    exec(code, namespace)
    assert not isinstance(namespace["LossRow"].__annotations__["kernel"], type)     # a ForwardRef
    for family in ("elementwise", "classification", "embedding"):
        losses = ROOT / "pyx" / f"{family}_losses.pxi"
        assert namespace["loss_rows"](losses) == setup_py["loss_rows"](losses)
