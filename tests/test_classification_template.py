"""The classification family's two source files (issue #29): pyx/classification_losses.pxi holds each
loss's row and row function, pyx/classification.pyx.tp the driver that names no loss. setup.py reads
the rows (``loss_rows``, shared with the elementwise family) and renders the driver and the type stub
from them (``render_templates``)."""
import inspect
import re
import runpy
from pathlib import Path

import pytest

from _losses_file_checks import assert_renders, assert_row_refused, assert_the_include_is_tracked
from lossengine import _classification

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ROOT / "pyx" / "classification_losses.pxi"
if not (ROOT / "setup.py").exists() or not LOSSES.exists():
    pytest.skip("needs the source tree (setup.py and pyx/)", allow_module_level=True)


@pytest.fixture(scope="module")
def setup_py():
    """setup.py's functions, without building (its setup() call runs only as __main__)."""
    return runpy.run_path(str(ROOT / "setup.py"), run_name="lossengine_setup")


@pytest.fixture(scope="module")
def rows(setup_py):
    return setup_py["loss_rows"](LOSSES)


def test_the_compiled_module_has_one_kernel_per_row(rows):
    kernels = {name for name, obj in vars(_classification).items()
               if inspect.isclass(obj) and issubclass(obj, _classification.RowKernel)
               and obj is not _classification.RowKernel}
    assert kernels == {row.kernel for row in rows} | {"PluginRow"}
    for row in rows:
        cls = getattr(_classification, row.kernel)
        assert cls.fields == tuple(name for _, name in row.options), row.kernel
        assert cls.has_hessian is row.hessian, row.kernel


def test_the_rows_hold_what_the_table_held(rows):
    """The nine built-in kernels, the Hessian set and the one lanes function, as the template's table and
    HESSIAN set had them before #29."""
    assert [row.kernel for row in rows] == [
        "CrossEntropyIndex", "CrossEntropyProb", "NLL", "MultiMargin", "MultiLabelMargin", "MultiLabelSoftMargin",
        "SoftmaxFocal", "Poly1CrossEntropy", "Tversky"]
    assert {row.kernel for row in rows if row.hessian} == {
        "CrossEntropyIndex", "CrossEntropyProb", "MultiLabelSoftMargin", "SoftmaxFocal", "Poly1CrossEntropy", "Tversky"}
    assert {row.kernel: row.lanes for row in rows if row.lanes} == {"CrossEntropyIndex": "_ce_index_lanes"}
    assert {row.kernel: row.targets for row in rows} == {
        "CrossEntropyIndex": "ignorable", "CrossEntropyProb": None, "NLL": "ignorable", "MultiMargin": "indices",
        "MultiLabelMargin": "listed", "MultiLabelSoftMargin": None, "SoftmaxFocal": "ignorable",
        "Poly1CrossEntropy": "ignorable", "Tversky": None}


def test_the_driver_names_no_loss(rows):
    """Every loss-specific name is in the losses file: the driver template's code names none of them."""
    driver = (ROOT / "pyx" / "classification.pyx.tp").read_text()
    code = re.sub(r'"""(.*?)"""|#[^\n]*', "", driver, flags=re.S)     # comments may name examples
    assert "PluginRowOp" in code and "_run_block" in code and 'include "classification_losses.pxi"' in code
    for row in rows:
        for name in (row.kernel, row.row, row.lanes):
            if name is not None:
                assert not re.search(rf"\b{name}(Op)?\b", code), name


# A loss added as the losses file's header says: its row and its math, nothing else. A lanes function
# too, so that the driver's lanes branch is rendered for a second kernel.
BRIER = '''

# -- Brier score over class indices ---------------------------------------------------------------
#@ loss(kernel="Brier", row="_brier", options=[("double", "k")], targets="indices", hessian=True,
#@      lanes="_brier_lanes")
cdef inline double _brier(const BrierOp* op, Buffers* b, Py_ssize_t p, Py_ssize_t off, double g,
                          floating_t* scratch, char* flags) noexcept nogil:
    return 0.0


cdef inline void _brier_lanes(const BrierOp* op, Buffers* b, Py_ssize_t p0, Py_ssize_t R, double* values,
                              floating_t dtype_tag) noexcept nogil:
    pass
'''


def test_a_new_loss_is_its_row_and_math(tmp_path, setup_py):
    """One row and its functions in the losses file render the option struct, the fused type's member,
    the dispatch branch, the lanes branch, both entry points, the kernel class and the stub entry."""
    pieces = ("cdef struct BrierOp:\n    double k\n",
              "    elif RowOp is BrierOp:\n        return _brier(op, b, p, off, g, scratch, flags)\n",
              "    if RowOp is BrierOp:\n        if b.S == 1 and b.C <= LANE_CLASSES:\n",
              "                _brier_lanes(op, b, p, lanes, lane_values, dtype_tag)\n",
              "                _ce_index_lanes(op, b, p, lanes, lane_values, dtype_tag)\n",
              "cdef void _block_Brier_float(", "cdef void _block_Brier_double(",
              "cdef class Brier(RowKernel):\n    \"\"\"The brier kernel; options: k.\"\"\"\n    cdef BrierOp op\n"
              "    fields = ('k', )\n    has_hessian = True\n",
              "        self.blocks[1] = _block_Brier_double\n        self.scans_targets = True\n"
              "        self.scan_low = 0\n        self.use_ignore = False\n        self.index_targets = True\n",
              "    def __init__(self, double k):\n        self.op.k = k\n",
              'include "classification_losses.pxi"')
    assert_renders(setup_py, tmp_path, "classification", BRIER, pieces, ("RowOp", "    BrierOp"),
                   "class Brier(RowKernel):\n    def __init__(self, k: float) -> None: ...")


@pytest.mark.parametrize("row, message", [
    ('#@ loss(kernel="Bad", row="_nll", targets=None, colour="red")', "unexpected keyword"),
    ('#@ loss(kernel="Bad", row="_nll")', "missing 1 required"),
    ('#@ loss("Bad", row="_nll", targets=None)', "not loss"),
    ('#@ loss(kernel="Bad", row="_nll", targets=NONE)', "malformed"),
    ('#@ loss(kernel="Bad", row="_nll",\n#@      targets=None', "was never closed"),
    ('#@ loss(kernel="Bad", row="_nowhere", targets=None)', "row='_nowhere', but classification_losses.pxi defines no"),
    ('#@ loss(kernel="Bad", row="_nll", targets=None, lanes="_nll_lanes")', "lanes='_nll_lanes'"),
    ('#@ loss(kernel="Bad", row="_nll", targets="some")', "targets='some'"),
    ('#@ loss(kernel="Bad", row="_nll", targets=None, hessian="yes")', "hessian of the wrong type"),
    ('#@ loss(kernel="Bad", row="_nll", targets=None, hessian=1)', "hessian of the wrong type"),
    ('#@ loss(kernel="Bad", row="_nll", targets=None, options=["double k"])', "options of the wrong type"),
    ('#@ loss(kernel="NLL", row="_nll", targets="ignorable")', "kernel='NLL' again (the row at line "),
])
def test_a_bad_row_stops_the_build_naming_its_line(tmp_path, setup_py, row, message):
    assert_row_refused(setup_py, LOSSES, tmp_path, row, message)


def test_editing_the_math_alone_recompiles_the_module():
    assert_the_include_is_tracked("classification")
