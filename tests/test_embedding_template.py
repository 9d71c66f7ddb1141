"""The embedding family's two source files (issue #29): pyx/embedding_losses.pxi holds each loss's row,
row function and math, pyx/embedding.pyx.tp the driver that names no loss. setup.py reads the rows
(``loss_rows``, shared with the other families) and renders the driver and the type stub from them
(``render_templates``)."""
import inspect
import re
import runpy
from pathlib import Path

import pytest

from _losses_file_checks import assert_renders, assert_row_refused, assert_the_include_is_tracked
from lossengine import _embedding

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ROOT / "pyx" / "embedding_losses.pxi"
if not (ROOT / "setup.py").exists() or not LOSSES.exists():
    pytest.skip("needs the source tree (setup.py and pyx/)", allow_module_level=True)
# setup.py's functions, without building (its setup() call runs only as __main__), and the rows.
SETUP_PY = runpy.run_path(str(ROOT / "setup.py"), run_name="lossengine_setup")
ROWS = SETUP_PY["loss_rows"](LOSSES)


def test_the_compiled_module_has_one_kernel_per_row():
    kernels = {name for name, obj in vars(_embedding).items()
               if inspect.isclass(obj) and issubclass(obj, _embedding.RowKernel) and obj is not _embedding.RowKernel}
    assert kernels == {row.kernel for row in ROWS}
    for row in ROWS:
        kernel = getattr(_embedding, row.kernel)
        assert kernel.fields == tuple(name for _, name in row.options), row.kernel
        assert kernel(*[0] * len(row.options)).inputs == row.inputs, row.kernel


def test_the_rows_hold_what_the_table_held():
    """The two kernels as the template's EMBEDDING table had them before #29 (kernel, options, inputs),
    and the triplet's block scratch (3 (D + 1) doubles, as its driver allocated)."""
    assert [(row.kernel, row.options, row.inputs) for row in ROWS] == [
        ("CosineEmbedding", (("double", "margin"),), 2),
        ("TripletMargin", (("double", "margin"), ("double", "p"), ("double", "eps"), ("bint", "swap"),
                           ("int", "distance")), 3)]
    assert {row.kernel: row.scratch for row in ROWS} == {"CosineEmbedding": 0, "TripletMargin": 3}


def test_the_driver_names_no_loss():
    """Every loss-specific name is in the losses file: the driver template's code names none of them."""
    driver = (ROOT / "pyx" / "embedding.pyx.tp").read_text()
    code = re.sub(r'"""(.*?)"""|#[^\n]*', "", driver, flags=re.S)     # comments may name examples
    assert "_run_block" in code and 'include "embedding_losses.pxi"' in code and "EMBEDDING" in code
    losses = LOSSES.read_text()
    helpers = re.findall(r"^cdef inline \w+ (\w+)\(", losses, re.M) + ["DISTANCE_PNORM", "DISTANCE_COSINE"]
    assert "_triplet_l2" in helpers and "_cosine_parts" in helpers
    for name in [row.kernel for row in ROWS] + helpers:
        assert not re.search(rf"\b{name}(Op)?\b", code), name


def test_each_row_is_directly_above_its_row_function():
    lines = LOSSES.read_text().split("\n")
    for row in ROWS:
        first = next(i for i, line in enumerate(lines) if line.startswith(f'#@ loss(kernel="{row.kernel}"'))
        after = next(line for line in lines[first:] if not line.startswith("#@"))
        assert after.startswith(f"cdef inline double {row.row}("), row.kernel


# A loss added as the losses file's header says: its row and its row function, nothing else. It takes
# scratch, so that the driver's allocation is rendered for a second kernel.
SQUARED = '''

#@ loss(kernel="SquaredDistance", row="_squared_distance", inputs=2, options=[("double", "k")], scratch=1)
cdef inline double _squared_distance(const SquaredDistanceOp* op, Buffers* b, Py_ssize_t r, double* scratch,
                                     floating_t dtype_tag) noexcept nogil:
    return 0.0
'''


def test_a_new_loss_is_its_row_and_math(tmp_path):
    """One row and its function in the losses file render the option struct, the fused type's member,
    the dispatch branch, the block's scratch, both entry points, the kernel class and the stub entry."""
    pieces = ("cdef struct SquaredDistanceOp:\n    double k\n",
              "        elif RowOp is SquaredDistanceOp:\n            value = _squared_distance(op, b, r, scratch, dtype_tag)\n",
              "    if RowOp is SquaredDistanceOp:\n        scratch = <double*>malloc(1 * (b.D + 1) * sizeof(double))\n",
              "    if RowOp is TripletMarginOp:\n        scratch = <double*>malloc(3 * (b.D + 1) * sizeof(double))\n",
              "cdef void _block_SquaredDistance_float(", "cdef void _block_SquaredDistance_double(",
              "cdef class SquaredDistance(RowKernel):\n    \"\"\"The squared_distance kernel; options: k.\"\"\"\n"
              "    cdef SquaredDistanceOp op\n    fields = ('k', )\n",
              "        self.blocks[1] = _block_SquaredDistance_double\n        self.inputs = 2\n",
              "    def __init__(self, double k):\n        self.op.k = k\n",
              'include "embedding_losses.pxi"')
    assert_renders(SETUP_PY, tmp_path, "embedding", SQUARED, pieces, ("RowOp", "    SquaredDistanceOp"),
                   "class SquaredDistance(RowKernel):\n    def __init__(self, k: float) -> None: ...")


@pytest.mark.parametrize("row, message", [
    ('#@ loss(kernel="Bad", row="_cosine_embedding", inputs=2, colour="red")', "unexpected keyword"),
    ('#@ loss(kernel="Bad", row="_cosine_embedding")', "missing 1 required"),
    ('#@ loss("Bad", row="_cosine_embedding", inputs=2)', "not loss"),
    ('#@ loss(kernel="Bad", row="_cosine_embedding", inputs=TWO)', "malformed"),
    ('#@ loss(kernel="Bad", row="_nowhere", inputs=2)', "row='_nowhere', but embedding_losses.pxi defines no"),
    ('#@ loss(kernel="Bad", row="_cosine_embedding", inputs=4)', "inputs=4; an embedding loss reads 1 to 3"),
    ('#@ loss(kernel="Bad", row="_cosine_embedding", inputs=0)', "inputs=0"),
    ('#@ loss(kernel="Bad", row="_cosine_embedding", inputs=2, scratch=-1)', "scratch=-1"),
    ('#@ loss(kernel="Bad", row="_cosine_embedding", inputs="2")', "inputs of the wrong type"),
    ('#@ loss(kernel="Bad", row="_cosine_embedding", inputs=2, scratch=True)', "scratch of the wrong type"),
    ('#@ loss(kernel="Bad", row="_cosine_embedding", inputs=2, options=["double k"])', "options of the wrong type"),
    ('#@ loss(kernel="TripletMargin", row="_triplet_margin", inputs=3)', "kernel='TripletMargin' again (the row at line "),
])
def test_a_bad_row_stops_the_build_naming_its_line(tmp_path, row, message):
    assert_row_refused(SETUP_PY, LOSSES, tmp_path, row, message)


def test_editing_the_math_alone_recompiles_the_module():
    assert_the_include_is_tracked("embedding")
