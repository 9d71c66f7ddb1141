"""Base classes for loss plugins that are elementwise: the author writes the per-element math only.

Two routes, one contract (``lossengine.Loss``: every reduction, ``grad_output``, ``wrt``, dtypes):

``NumpyElementwiseLoss``
    Pure Python. Write ``element_loss(*arrays)`` and ``element_partials(*arrays)`` with NumPy; the
    base class does shapes, dtypes, reductions, grad_output and wrt, and never hands the author the
    caller's arrays (it passes float64 copies), so an in-place slip cannot corrupt the caller's data.

``CompiledElementwiseLoss``
    Cython. Write one ``nogil`` element function against ``lossengine/elementwise_api.pxd`` and
    point ``element_function`` at its capsule; the loss then runs in lossengine's own fused,
    multithreaded, deterministic elementwise driver, exactly like a built-in.

``CompiledRowLoss``
    Cython, for classification-shaped losses. Write one ``nogil`` function over a row of class scores
    and its class index against ``lossengine/rowwise_api.pxd`` and point ``row_function`` at its
    capsule; the loss then runs in the classification family's row-parallel driver, with NLL's and
    cross-entropy's weight, ignore_index, reductions, grad_output and (N, C, d1..dK) layouts.
"""
from __future__ import annotations

import math
import os
from typing import Any, ClassVar, NamedTuple

import numpy as np

from . import _arrays, _classification, _elementwise
from ._reductions import reduction_of
from .base import FusedLoss
from .declaration import integer, reduction
from .losses.classification import IndexTargetLoss, class_weight
from .losses.elementwise import ElementwiseLoss

__all__ = ["NumpyElementwiseLoss", "CompiledElementwiseLoss", "CompiledRowLoss", "get_include", "plugin_build_options"]


def get_include() -> str:
    """The directory to put on a compiled plugin's Cython include path, so that
    ``from lossengine.elementwise_api cimport ...`` (or ``lossengine.rowwise_api``) finds lossengine's public .pxd files."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def plugin_build_options() -> dict:
    """What a compiled plugin's setup.py needs to build like a built-in kernel: ``include_path``
    for cythonize, ``extra_compile_args`` and ``extra_link_args`` for its Extension. The flags are the
    ones this lossengine was compiled with (optimization, target CPU, libmvec vector math), minus
    OpenMP's runtime: the threads are the driver's, and a plugin's functions run inside them (only
    ``-fopenmp-simd``, for the simd loops of lossengine/row_math.pxd)."""
    built_with = _elementwise.compile_flags()
    flags = [f for f in built_with if f != "-fopenmp"]
    if "-fopenmp" in built_with:
        flags.append("-fopenmp-simd")   # lossengine/row_math.pxd's simd reductions; no OpenMP runtime
    if any(f.startswith("--param=") for f in flags):   # GCC
        # for_each_element's loop (elementwise_api.pxd) reads two or more operands and the params and
        # writes the values and two or more partials through pointers GCC cannot prove apart: 12
        # run-time alias checks for two operands, beyond GCC's default limit of 10, and the loop
        # stayed scalar (the pseudo-Huber example ran at half the speed of a built-in).
        flags.append("--param=vect-max-version-for-alias-checks=32")
    return {
        "include_path": [get_include()],
        "extra_compile_args": flags,
        "extra_link_args": ["-lmvec"] if "-DLE_USE_LIBMVEC" in flags else [],
    }


class NumpyElementwiseLoss(FusedLoss):
    """An elementwise loss written in NumPy: subclasses implement ``element_loss`` and
    ``element_partials`` (and may override ``element_loss_and_partials`` to share work).

    Every method receives the arguments as float64 arrays of one common shape (the input's; arguments
    named in ``broadcast_arguments`` are broadcast to it, the others must match it). Set
    ``working_dtype = None`` to receive the caller's dtype instead (float32 stays float32; the
    validator will hold that path to float64 accuracy). It runs on the families' compute skeleton
    (lossengine.base.FusedLoss): only the kernel is the author's NumPy code.
    """
    decomposes: ClassVar[str] = "elements"     # see ElementwiseLoss
    sample_layout: ClassVar[str] = "batch-rows"   # its batch rows are independent (lossengine.Loss)

    differentiable: ClassVar[tuple[str, ...]] = ("input",)
    broadcast_arguments: ClassVar[tuple[str, ...]] = ()
    working_dtype: ClassVar[Any] = np.float64

    # -- what the author writes ----------------------------------------------------------------
    def element_loss(self, *arrays: np.ndarray) -> np.ndarray:
        """The loss of every element, an array of the arrays' common shape."""
        raise NotImplementedError(f"{type(self).__name__} does not implement element_loss()")

    def element_partials(self, *arrays: np.ndarray) -> tuple:
        """d loss / d argument at every element, one array per name in ``differentiable``, in that order."""
        raise NotImplementedError(f"{type(self).__name__} does not implement element_partials()")

    def element_loss_and_partials(self, *arrays: np.ndarray) -> tuple:
        """(element_loss, element_partials) for forward_backward; override to share intermediates."""
        return self.element_loss(*arrays), self.element_partials(*arrays)

    # Optional: d^2 loss / d input^2 at every element (an array of the arrays' common shape). A class
    # that defines it gets ``gradient_hessian`` (gradient boosting), checked by the validator against
    # finite differences of its gradient; one that does not loses nothing.
    element_hessian: ClassVar[Any] = None

    @property
    def has_hessian(self) -> bool:
        return type(self).element_hessian is not None

    def _run_hessian(self, plan: _NumpyPlan, grad: np.ndarray, hess: np.ndarray) -> None:
        partials = self.element_partials(*plan.work)
        partials = partials if isinstance(partials, (tuple, list)) else (partials,)
        grad[...] = np.broadcast_to(np.asarray(partials[self.differentiable.index(self.arguments[0])]),
                                    plan.loss_shape)
        hess[...] = np.broadcast_to(np.asarray(self.element_hessian(*plan.work)), plan.loss_shape)

    # -- the skeleton's hooks ------------------------------------------------------------------
    def _plan(self, arrays) -> _NumpyPlan:
        given = [_arrays.float_array(name, a) for name, a in zip(self.arguments, arrays)]
        shape = given[0].shape
        _arrays.require_same_shapes(self.arguments, given, self.broadcast_arguments)
        dtype = _arrays.compute_dtype(given[0])
        work_dtype = dtype if self.working_dtype is None else np.dtype(self.working_dtype)
        # Fresh, writable copies of one shape: the author may compute in place without touching
        # the caller's arrays.
        work = [_working_copy(name, a, shape, work_dtype) for name, a in zip(self.arguments, given)]
        return _NumpyPlan(dtype, shape, given, work)

    def _run(self, plan: _NumpyPlan, grads: dict, loss_out, upstream, scale: float) -> float:
        want_value = loss_out is not None or self.reduction != "none"
        if want_value and grads:
            per_element, partials = self.element_loss_and_partials(*plan.work)
        elif want_value:
            per_element, partials = self.element_loss(*plan.work), None
        else:
            per_element, partials = None, self.element_partials(*plan.work)
        shape, n = plan.loss_shape, math.prod(plan.loss_shape)
        mode = reduction_of(self.reduction)
        denominator = mode.denominator(n)
        total = 0.0
        if per_element is not None:
            per_element = np.broadcast_to(np.asarray(per_element), shape)
            if loss_out is not None:
                loss_out[...] = per_element
            else:
                total = mode.value(float(np.sum(per_element, dtype=np.float64)), denominator)
        if grads:
            partials = tuple(partials) if isinstance(partials, (tuple, list)) else (partials,)
            if len(partials) != len(self.differentiable):
                raise TypeError(f"{type(self).__name__}.element_partials returned {len(partials)} arrays for "
                                f"differentiable={self.differentiable}")
            scale = mode.grad_scale(scale, denominator)
            upstream = upstream.reshape(shape) if upstream.size == n and n != 1 else upstream.reshape(())
            factor = scale * upstream.astype(np.float64)
            for name, buffer in grads.items():
                partial = np.asarray(partials[self.differentiable.index(name)], np.float64)
                buffer[...] = np.broadcast_to(partial, shape) * factor
        return total

    def _grad_buffer(self, plan: _NumpyPlan, name: str) -> np.ndarray:
        return np.empty(plan.loss_shape, np.float64)

    def _grad_result(self, plan: _NumpyPlan, name: str, grad: np.ndarray) -> np.ndarray:
        k = self.arguments.index(name)
        g = _arrays.unbroadcast(grad, plan.given[k].shape)
        return np.array(g, dtype=_arrays.result_dtype(plan.given[k], plan.dtype)).reshape(plan.given[k].shape)


class _NumpyPlan(NamedTuple):
    dtype: np.dtype
    loss_shape: tuple
    given: list
    work: list


def _working_copy(name: str, arr: np.ndarray, shape: tuple, dtype) -> np.ndarray:
    _arrays.require_broadcastable(name, arr.shape, shape)
    # Always a copy, and always C-ordered: NumPy's pairwise sums follow memory order, so a Fortran or
    # strided caller must get the same work arrays (and the same bits) as a C-contiguous one.
    return np.array(np.broadcast_to(arr, shape), dtype=dtype, order="C")


class CompiledElementwiseLoss(ElementwiseLoss):
    """An elementwise loss whose per-element function is compiled in a plugin (see
    lossengine/elementwise_api.pxd): it runs in the built-in driver, as a ``_elementwise.Plugin`` kernel.

    Class attributes: ``element_function``, the PyCapsule from the plugin's
    ``element_fn_capsule(fn)``; optionally ``chunk_function``, from ``chunk_fn_capsule(chunk)``
    (the vectorizable form, strongly advised), and ``hessian_function``, from
    ``hessian_fn_capsule(fn_h)`` (for ``gradient_hessian``); plus ``name``, ``arguments``, ``differentiable`` and
    optionally ``broadcast_arguments`` as for any ElementwiseLoss. Options reach the element function
    as doubles through ``element_params()``; option arrays (weights) ride along as extra operands
    named in ``operand_options``.
    """

    element_function: ClassVar[Any] = None
    chunk_function: ClassVar[Any] = None
    # Optional: the capsule of the element function's second-derivative form (elementwise_api.pxd's
    # ``hessian_fn_capsule``), which also writes d^2 loss / d input^2; it gives ``gradient_hessian``.
    hessian_function: ClassVar[Any] = None

    def element_params(self) -> tuple:
        """The doubles the element function receives as ``params``, in the order it reads them."""
        return ()

    def _make_kernel(self):
        operands = len(self.arguments) + len(self.operand_options)
        if operands > _elementwise.PLUGIN_MAX_OPERANDS:
            raise ValueError(f"{type(self).__name__}: an element function takes at most "
                             f"{_elementwise.PLUGIN_MAX_OPERANDS} operands, got {operands}")
        params = np.ascontiguousarray(self.element_params(), dtype=np.float64).reshape(-1)
        cls = type(self)
        return _elementwise.Plugin(cls.element_function, cls.chunk_function, params, operands,
                                   cls.hessian_function)

    def _kernel_for_call(self):
        # element_params() may read attributes the author changes at will: a fresh kernel per call.
        return self._make_kernel()


class CompiledRowLoss(IndexTargetLoss):
    """A classification loss whose per-row function is compiled in a plugin (see
    lossengine/rowwise_api.pxd): it runs in the built-in classification driver, as a
    ``_classification.PluginRow`` kernel, exactly as NLLLoss does.

    Inputs are torch's classification layouts: scores (C,), (N, C) or (N, C, d1..dK) and int class
    indices (), (N,) or (N, d1..dK). Options (declared, so ``__init__``, checks and repr are
    generated): ``weight`` (per-class weights: the row's loss and gradient times w[target]),
    ``ignore_index`` (rows with that target contribute 0 and are not counted) and ``reduction``
    ('mean' divides by the sum of w[target] over the rows not ignored, as torch's NLL and
    cross-entropy do). A subclass adds its own options to ``options`` with lossengine.declaration,
    and passes them to its row function as doubles through ``row_params()``.

    Class attributes: ``row_function``, the PyCapsule from the plugin's ``row_fn_capsule(fn)``;
    optionally ``row_function_float32``, from ``row_f32_fn_capsule(fn32)``, the same function over
    float32 rows (float32 inputs then take it: twice the vector lanes), or
    ``row_function_float32_scaled``, from ``row_f32_scaled_fn_capsule(fn)``, the float32 form that
    also applies the gradient's scale (float32 inputs take it first: the driver then writes no pass
    of its own over the row); plus ``name`` as for any loss.
    """

    row_function: ClassVar[Any] = None
    row_function_float32: ClassVar[Any] = None
    row_function_float32_scaled: ClassVar[Any] = None
    options = (class_weight(), integer("ignore_index", -100, examples=(1,)), reduction())
    reference: ClassVar[str] = "plugin"

    def row_params(self) -> tuple:
        """The doubles the row function receives as ``params``, in the order it reads them."""
        return ()

    def _layout(self, input, target, dtype):
        return self._index_layout(input, target, dtype, _classification.PluginRow)

    def _kernel(self, kernel_class: type):
        # row_params() may read attributes the author changes at will: the kernel is rebuilt
        # whenever its parameters differ from the cached one's.
        params = np.ascontiguousarray(self.row_params(), dtype=np.float64).reshape(-1)
        key = (params.tobytes(), self.ignore_index)
        cached = self._kernels.get(kernel_class)
        if cached is None or cached[0] != key:
            cls = type(self)
            cached = self._kernels[kernel_class] = (key, kernel_class(cls.row_function, params, self.ignore_index,
                                                                      cls.row_function_float32,
                                                                      cls.row_function_float32_scaled))
        return cached[1]
from ._plugin_build import build_plugin  # noqa: E402,F401  (#29: a compiled plugin's setup.py; docs/plugins.md)
