"""The validator's contract checks (lossengine.validation runs them, in its CHECK_ORDER): shapes
and dtypes, inputs unmodified, results not aliasing inputs or earlier results, linearity in
grad_output, ``wrt`` selection and order, bit-identical repeats and thread counts (also on inputs
large enough to run in parallel), and memory-layout invariance.
"""
from __future__ import annotations

import numpy as np

from ._check_support import (GRAD_OUTPUT_RTOL, SCALAR_GRAD_OUTPUT, Case, as_tuple, bits_equal, check, close,
                             large_inputs, shared, snapshot, worst)
from ._threads import get_num_threads, threads


@check("shapes_and_dtypes")
def _shapes(case: Case):
    loss = case.make()
    names = case.loss_class.differentiable
    for dtype in (np.float64, np.float32):
        arrays = case.inputs(dtype)
        value = loss(*arrays)
        if np.asarray(value).dtype != np.dtype(dtype):
            yield f"{np.dtype(dtype).name} input gave a {np.asarray(value).dtype} value"
        if case.reduction != "none" and (np.ndim(value) != 0 or not isinstance(value, np.generic)):
            yield f"reduction={case.reduction!r} must give a NumPy scalar, got {type(value).__name__} {np.shape(value)}"
        if case.reduction == "none" and not isinstance(value, np.ndarray):
            yield f"reduction='none' must give an ndarray, got {type(value).__name__}"
        grads = as_tuple(loss.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names), len(names))
        for name, grad in zip(names, grads):
            arg = arrays[case.loss_class.arguments.index(name)]
            if not isinstance(grad, np.ndarray) or grad.shape != np.shape(arg) or grad.dtype != np.dtype(dtype):
                yield (f"gradient wrt {name} is {type(grad).__name__} {np.shape(grad)} "
                       f"{getattr(grad, 'dtype', '')}, expected ndarray {np.shape(arg)} {np.dtype(dtype).name}")


@check("inputs_unmodified")
def _unmodified(case: Case):
    loss = case.make()
    names = case.loss_class.differentiable
    for dtype in (np.float64, np.float32):
        arrays = case.inputs(dtype)
        before = snapshot(arrays)
        loss(*arrays)
        loss.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
        loss.forward_backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
        for name, a, b in zip(case.loss_class.arguments, arrays, before):
            if not bits_equal(a, b):
                yield f"argument {name} ({np.dtype(dtype).name}) was modified in place"


@check("outputs_not_aliased")
def _not_aliased(case: Case):
    # A result sharing memory with an argument, or with the previous call's result, turns the
    # caller's next in-place update (or the next call) into silent corruption.
    loss = case.make()
    names = case.loss_class.differentiable
    arrays = case.inputs(np.float64)

    def outputs():
        # The default grad_output of 1: where "skip the multiply" fast paths hand back a partial as is.
        value, grads = loss.forward_backward(*arrays, wrt=names)
        return [("value", value)] + [(f"gradient wrt {n}", g) for n, g in zip(names, as_tuple(grads, len(names)))]

    first, second = outputs(), outputs()
    for (what, out), (_, again) in zip(first, second):
        if not isinstance(out, np.ndarray):
            continue
        for name, arg in zip(case.loss_class.arguments, arrays):
            if np.shares_memory(out, arg):
                yield f"the {what} shares memory with argument {name}"
        if isinstance(again, np.ndarray) and np.shares_memory(out, again):
            yield f"the {what} of two calls is the same buffer"


@check("grad_output_respected")
def _grad_output(case: Case):
    # The gradient is linear in grad_output: scaling it must scale every gradient, including by 0
    # and by a negative number. (An array grad_output for 'none' is held to the finite differences.)
    loss = case.make()
    names = case.loss_class.differentiable
    arrays = case.inputs(np.float64)
    base = as_tuple(loss.backward(*arrays, grad_output=1.0, wrt=names), len(names))
    shape = np.shape(loss(*arrays)) if case.reduction == "none" else None
    for c in (2.5, -0.5, 0.0):
        grad_outputs = [(f"grad_output={c}", c)]
        if shape is not None:
            grad_outputs.append((f"grad_output=full({shape}, {c})", np.full(shape, c)))
        for label, go in grad_outputs:
            scaled = as_tuple(loss.backward(*arrays, grad_output=go, wrt=names), len(names))
            for name, g1, gc in zip(names, base, scaled):
                expected = c * np.asarray(g1, np.float64)
                if not close(gc, expected, GRAD_OUTPUT_RTOL, 1e-300):
                    yield (f"gradient wrt {name} with {label} is not {c} x the gradient with grad_output=1; "
                           f"{worst(gc, expected)}")


@check("wrt_selection")
def _wrt(case: Case):
    loss = case.make()
    cls = case.loss_class
    names = cls.differentiable
    arrays = case.inputs(np.float64)
    together = as_tuple(loss.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names), len(names))
    for name, expected in zip(names, together):
        alone = loss.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=name)
        if not isinstance(alone, np.ndarray):
            yield f"backward(wrt={name!r}) must return one ndarray, got {type(alone).__name__}"
        elif not bits_equal(alone, expected):
            yield f"backward(wrt={name!r}) differs from its entry in backward(wrt={names!r})"
    if len(names) > 1:
        flipped = as_tuple(loss.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names[::-1]), len(names))
        if not all(bits_equal(a, b) for a, b in zip(flipped, together[::-1])):
            yield f"backward(wrt={names[::-1]!r}) does not return the gradients in the order asked"
    for name in cls.arguments:
        if name in names:
            continue
        try:
            loss.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=name)
        except (ValueError, TypeError):
            continue
        yield f"backward(wrt={name!r}) returned a gradient for a non-differentiable argument instead of raising ValueError"


@check("deterministic_and_thread_invariant")
def _deterministic(case: Case):
    loss = case.make()
    names = case.loss_class.differentiable

    def run(arrays):
        value, grads = loss.forward_backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
        return [value, *as_tuple(grads, len(names))]

    arrays = case.inputs(np.float64)
    first, second = run(arrays), run(arrays)
    if not all(bits_equal(a, b) for a, b in zip(first, second)):
        yield "two identical calls gave different bits"
    # The sample inputs are too small to wake a thread team (and a sum of 15 numbers rarely changes
    # bits when regrouped), so thread invariance is also checked on inputs past the parallel cutoff.
    for label, arrays in (("sample inputs", arrays), ("large inputs", shared(case, "large-float64", large_inputs, np.float64))):
        if arrays is None:
            continue
        counts = sorted({1, 2, 3, max(2, get_num_threads())})
        results = {}
        for count in counts:
            with threads(count):
                results[count] = run(arrays)
        for count in counts[1:]:
            if not all(bits_equal(a, b) for a, b in zip(results[counts[0]], results[count])):
                yield f"{counts[0]} thread and {count} threads gave different bits ({label})"
                break




LAYOUT_RTOL = 1e-12     # another memory layout of the same values: only the summation order may differ


def other_layouts(a: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The same values as ``a`` in the layouts users pass: Fortran-ordered, a strided view (every
    other element of a wider buffer, along the last axis), read-only and byte-swapped."""
    layouts = []
    if a.ndim >= 2:
        layouts.append(("Fortran-ordered", np.asfortranarray(a)))
    if a.ndim >= 1:
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        layouts.append(("a strided view", wide[..., ::2]))
    frozen = a.copy()
    frozen.flags.writeable = False
    layouts.append(("read-only", frozen))
    if a.dtype.itemsize > 1:
        layouts.append(("byte-swapped", a.astype(a.dtype.newbyteorder())))
    return layouts


@check("layout_invariant")
def _layout(case: Case):
    # The sample inputs are C-ordered; users pass transposes, slices, memory-mapped (read-only) and
    # big-endian data. Each argument in turn, the others C-ordered: the value and every gradient must
    # be the C-ordered call's, element for element (a gradient written in memory order and reshaped
    # in C order is right for C input only). Once per option set: layout does not depend on it.
    if case.reduction != case.loss_class.reductions[0]:
        return
    loss = case.make("none" if "none" in case.loss_class.reductions else None)
    names = case.loss_class.differentiable
    arrays = case.inputs(np.float64)
    value, grads = loss.forward_backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
    expected = [("value", value)] + list(zip((f"gradient wrt {n}" for n in names), as_tuple(grads, len(names))))
    for k, (argument, a) in enumerate(zip(case.loss_class.arguments, arrays)):
        if not isinstance(a, np.ndarray):
            continue
        for label, other in other_layouts(a):
            probe = list(arrays)
            probe[k] = other
            v, g = loss.forward_backward(*probe, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
            got = [v, *as_tuple(g, len(names))]
            for (what, want), have in zip(expected, got):
                if not close(have, want, LAYOUT_RTOL):
                    yield (f"{argument} given {label} changes the {what}; {worst(have, want)}"
                           if np.shape(have) == np.shape(want) else
                           f"{argument} given {label} changes the {what}'s shape to {np.shape(have)}")
