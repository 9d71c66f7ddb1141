"""``lossengine new-plugin NAME [--compiled|--rowwise]``: the skeleton of a plugin distribution that installs
and passes the validator as generated, for the author to replace the example math in.

The example loss is pseudo-Huber, delta^2 (sqrt(1 + (d/delta)^2) - 1) with d = input - target:
smooth, with both partials in closed form, so the generated test exercises every check. The NumPy
route writes it with ``lossengine.NumpyElementwiseLoss``; ``--compiled`` writes the per-element
function in Cython against ``lossengine/elementwise_api.pxd`` and the class with
``lossengine.CompiledElementwiseLoss`` (built like plugins/lossengine-pseudohuber). ``--rowwise`` writes a
classification loss instead: one nogil function per row of class scores against
``lossengine/rowwise_api.pxd`` (the example is cross-entropy at a temperature, a ``temperature``
option), the class with ``lossengine.CompiledRowLoss`` (built like plugins/lossengine-amsoftmax).
"""
from __future__ import annotations

import re
from pathlib import Path

_PYPROJECT = '''\
[build-system]
requires = [{requires}]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "lossengine plugin: {loss_name}"
requires-python = ">=3.9"
dependencies = ["lossengine", "numpy>=1.23"]

# How lossengine finds the plugin: the entry-point group "lossengine", pointing at the module that
# holds the @hookimpl.
[project.entry-points.lossengine]
{name} = "{module}"

[project.optional-dependencies]
test = ["pytest"]

[tool.setuptools]
packages = ["{module}"]
'''

_NUMPY_MODULE = '''\
"""{loss_name}: pseudo-Huber as an example, delta^2 (sqrt(1 + (d / delta)^2) - 1), d = input - target.
Replace element_loss and element_partials with your loss; lossengine does shapes, dtypes, reductions,
grad_output and wrt."""
import numpy as np

import lossengine as le

__all__ = ["{cls}"]


class {cls}(le.NumpyElementwiseLoss):
    name = "{loss_name}"
    arguments = ("input", "target")
    differentiable = ("input", "target")

    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.delta = float(delta)
        if not self.delta > 0.0:
            raise ValueError(f"delta must be > 0, got {{delta!r}}")

    def _options_repr(self) -> str:
        return f"delta={{self.delta!r}}, reduction={{self.reduction!r}}"

    def element_loss(self, x, t):
        r = (x - t) / self.delta
        return self.delta ** 2 * (np.sqrt(1.0 + r * r) - 1.0)

    def element_partials(self, x, t):
        r = (x - t) / self.delta
        g = self.delta * r / np.sqrt(1.0 + r * r)
        return g, -g


@le.hookimpl
def lossengine_register_losses(register):
    register({cls})
'''

_COMPILED_MODULE = '''\
"""{loss_name}: pseudo-Huber as an example, compiled (_kernel.pyx, against lossengine/elementwise_api.pxd);
this class only declares the loss and points lossengine's elementwise driver at the kernel."""
import lossengine as le

from ._kernel import ELEMENT, CHUNK

__all__ = ["{cls}"]


class {cls}(le.CompiledElementwiseLoss):
    name = "{loss_name}"
    arguments = ("input", "target")
    differentiable = ("input", "target")
    element_function = ELEMENT
    chunk_function = CHUNK


@le.hookimpl
def lossengine_register_losses(register):
    register({cls})
'''

_KERNEL = '''\
# cython: language_level=3, cdivision=True
"""The per-element function, handed to lossengine's elementwise driver as capsules."""
from libc.math cimport sqrt

from lossengine.elementwise_api cimport chunk_fn_capsule, element_fn_capsule, for_each_element


cdef inline double element(const double* args, const double* params, double* partials) noexcept nogil:
    # args = (input, target); returns the loss, writes d loss / d args into partials.
    cdef double d = args[0] - args[1]
    cdef double s = sqrt(1.0 + d * d)
    partials[0] = d / s
    partials[1] = -d / s
    return s - 1.0


cdef void chunk(Py_ssize_t m, const double* const* args, const double* params, double* values,
                double* const* partials) noexcept nogil:
    for_each_element(element, 2, m, args, params, values, partials)


ELEMENT = element_fn_capsule(element)
CHUNK = chunk_fn_capsule(chunk)
'''

_ROWWISE_MODULE = '''\
"""{loss_name}: cross-entropy of the scores divided by a temperature, as an example, compiled
(_kernel.pyx, against lossengine/rowwise_api.pxd); lossengine's classification driver supplies
weight, ignore_index, the reductions, grad_output and (N, C, d1..dK) inputs."""
import lossengine as le
from lossengine.declaration import real

from ._kernel import ROW

__all__ = ["{cls}"]


class {cls}(le.CompiledRowLoss):
    name = "{loss_name}"
    # Your options first (lossengine.declaration), then weight, ignore_index and reduction.
    options = (real("temperature", 1.0, gt=0.0, examples=(0.5,)),) + le.CompiledRowLoss.options
    row_function = ROW

    def row_params(self):
        return (self.temperature,)             # -> params[0] in the row function


@le.hookimpl
def lossengine_register_losses(register):
    register({cls})
'''

_ROW_KERNEL = '''\
# cython: language_level=3, cdivision=True
"""The row function, handed to lossengine's classification driver as a capsule."""
from libc.math cimport exp, log
from libc.stdint cimport int64_t

from lossengine.rowwise_api cimport row_fn_capsule


cdef double row(Py_ssize_t C, const double* x, int64_t target, const double* params,
                double* grad) noexcept nogil:
    # x: the row's C scores; target: its class (0 <= target < C); returns the row's loss and
    # writes grad[c] = d loss / d x[c]. Here: -log softmax(x / T)[target], max-shifted.
    cdef double inv_t = 1.0 / params[0], m = x[0], total = 0.0
    cdef Py_ssize_t c
    for c in range(C):
        m = x[c] if x[c] > m else m
    for c in range(C):
        grad[c] = exp((x[c] - m) * inv_t)
    for c in range(C):
        total += grad[c]
    for c in range(C):
        grad[c] = grad[c] * inv_t / total
    grad[target] -= inv_t
    return log(total) - (x[target] - m) * inv_t


ROW = row_fn_capsule(row)
'''

_SETUP = '''\
"""Builds {module}._kernel; lossengine's docs/plugins.md, "4. The build", explains the lines below."""
import runpy, subprocess, sys

try:
    from lossengine.extending import build_plugin
except ImportError:  # pip's build isolation: lossengine is not on PyPI, so ask the python pip installs into (-E)
    where = subprocess.check_output([sys.executable, "-Ec", "import lossengine._plugin_build as b; print(b.__file__)"])
    build_plugin = runpy.run_path(where.decode().strip())["build_plugin"]
build_plugin("{module}._kernel")
'''

_TEST = '''\
"""The validator on the plugin: the class directly (works before installing), and every loss the
installed distribution registered (a loss the registry rejected fails here; skipped when not installed)."""
import lossengine.testing as let

from {module} import {cls}


def test_{name}_is_valid():
    let.assert_loss_valid({cls})


@let.parametrize_losses(source="{dist}")
def test_registered(loss_class):
    let.assert_loss_valid(loss_class)
'''


def class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Loss"


def new_plugin(name: str, directory: str | Path = ".", compiled: bool = False, rowwise: bool = False) -> Path:
    """Write the plugin distribution ``lossengine-NAME`` into ``directory``; returns its folder.
    ``name`` is a lowercase identifier ('pseudo_huber'); the loss registers as ``NAME_loss``."""
    if compiled and rowwise:
        raise ValueError("choose one of --compiled (elementwise) and --rowwise (classification rows)")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
        raise ValueError(f"plugin name must be a lowercase identifier (letters, digits, _), got {name!r}")
    dist = f"lossengine-{name.replace('_', '-')}"
    module = f"lossengine_{name}"
    root = Path(directory) / dist
    if root.exists():
        raise FileExistsError(f"{root} already exists")
    fields = dict(name=name, dist=dist, module=module, cls=class_name(name), loss_name=f"{name}_loss",
                  requires='"setuptools>=64", "cython>=3.1"' if compiled or rowwise else '"setuptools>=64"')
    files = {
        "pyproject.toml": _PYPROJECT,
        f"{module}/__init__.py": _ROWWISE_MODULE if rowwise else _COMPILED_MODULE if compiled else _NUMPY_MODULE,
        f"tests/test_{name}.py": _TEST,
    }
    if compiled or rowwise:
        files[f"{module}/_kernel.pyx"] = _ROW_KERNEL if rowwise else _KERNEL
        files["setup.py"] = _SETUP
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template if relative.endswith(".pyx") else template.format(**fields))
    return root
