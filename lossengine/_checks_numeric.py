"""The validator's numeric checks (lossengine.validation runs them, in its CHECK_ORDER): gradients
and Hessians against central differences, float32 against float64, the reductions against 'none'
(also on large inputs, against the exactly rounded sum), forward_backward against forward and
backward, gradients on a subset of rows of large inputs, finiteness over several draws.

Gradients are checked against float64 central differences of sum(grad_output * loss), with a
grad_output other than 1 (an ignored grad_output must not pass) and, for 'none', a random array.
Elements where the one-sided differences disagree sit on a kink (|x| at 0, a hinge) and are
skipped: that is how losses with kinks pass without hand-written exclusions.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ._check_support import (F32_ATOL, F32_RTOL, FD_ATOL, FD_RTOL, FINITE_SEEDS, FUSED_RTOL, REDUCTION_RTOL,
                             SCALAR_GRAD_OUTPUT, Case, as_float, as_tuple, bits_equal, central_differences, check,
                             close, denominator, grad_outputs, large_inputs, num, objective, ratio, shared, worst)


@check("sample_inputs")
def _sample_inputs(case: Case):
    for dtype in (np.float64, np.float32):
        arrays = case.inputs(dtype)
        if len(arrays) != len(case.loss_class.arguments):
            yield (f"sample_inputs returned {len(arrays)} arrays for arguments "
                   f"{case.loss_class.arguments}")


@check("gradient_vs_finite_differences")
def _gradient_fd(case: Case):
    loss = case.make()
    arrays = [as_float(a, np.float64) for a in case.inputs(np.float64)]
    names = case.loss_class.differentiable
    for go in grad_outputs(case, loss, arrays):
        go_label = "array grad_output" if np.ndim(go) else f"grad_output={go}"
        grads = as_tuple(loss.backward(*arrays, grad_output=go, wrt=names), len(names))
        f0 = objective(loss, arrays, go)
        for name, grad in zip(names, grads):
            k = case.loss_class.arguments.index(name)
            x = arrays[k]
            fd, kink = central_differences(lambda probe, j: objective(loss, probe, go), f0, arrays, k)
            grad = np.asarray(grad)
            if grad.shape != x.shape:
                yield f"gradient wrt {name} has shape {grad.shape}, expected {x.shape} ({go_label})"
                continue
            atol = FD_ATOL * (1.0 + float(np.max(np.abs(fd), initial=0.0)))
            g = np.where(kink, fd, grad)
            if not close(g, fd, FD_RTOL, atol):
                yield (f"gradient wrt {name} disagrees with central differences ({go_label}, float64); "
                       f"{worst(g, fd)}")




@check("hessian_vs_finite_differences")
def _hessian_fd(case: Case):
    """Losses offering ``gradient_hessian`` (has_hessian): its gradient is backward of the 'none' loss
    with grad_output 1, its Hessian the central difference of that gradient, element by element
    (kinks of the gradient skipped, as for the gradient check); float32 tracks float64 and ``out=``
    gives the same bits. Once per option set: the Hessian does not depend on the reduction."""
    loss = case.make()
    if not getattr(loss, "has_hessian", False) or case.reduction != case.loss_class.reductions[0]:
        return
    arrays = [as_float(a, np.float64) for a in case.inputs(np.float64)]
    name = case.loss_class.arguments[0]
    grad, hess = loss.gradient_hessian(*arrays)
    x = arrays[0]
    if np.shape(grad) != x.shape or np.shape(hess) != x.shape:
        yield f"gradient_hessian returned shapes {np.shape(grad)}, {np.shape(hess)} for an input of {x.shape}"
        return
    unreduced = case.loss_class(**case.options, reduction="none")

    def gradient(probe):
        return np.asarray(unreduced.backward(*probe, grad_output=1.0, wrt=name), np.float64)

    g0 = gradient(arrays)
    if not close(grad, g0, FUSED_RTOL, FUSED_RTOL * float(np.max(np.abs(g0), initial=0.0))):
        yield f"gradient_hessian's gradient differs from backward of the 'none' loss; {worst(grad, g0)}"
    fd, kink = central_differences(lambda probe, j: gradient(probe)[j], g0, arrays, 0)
    atol = FD_ATOL * (1.0 + float(np.max(np.abs(fd), initial=0.0)))
    checked = np.where(kink, fd, np.asarray(hess, np.float64))
    if not close(checked, fd, 10 * FD_RTOL, 10 * atol):
        yield (f"Hessian wrt {name} disagrees with central differences of the gradient (float64); "
               f"{worst(checked, fd)}")
    a32 = [as_float(a, np.float32) for a in case.inputs(np.float32)]
    g32, h32 = loss.gradient_hessian(*a32)
    g64, h64 = loss.gradient_hessian(*[as_float(a, np.float64) for a in a32])
    for what, lo, hi in (("gradient", g32, g64), ("Hessian", h32, h64)):
        scale = float(np.max(np.abs(np.asarray(hi, np.float64)), initial=0.0))
        if not close(lo, hi, F32_RTOL, F32_ATOL * scale):
            yield f"float32 gradient_hessian {what} strays from float64; {worst(lo, hi)}"
    out = (np.empty_like(grad), np.empty_like(hess))
    result = loss.gradient_hessian(*arrays, out=out)
    if result[0] is not out[0] or result[1] is not out[1] or not (bits_equal(out[0], grad)
                                                                 and bits_equal(out[1], hess)):
        yield "gradient_hessian(out=(g, h)) did not fill and return the given arrays with the same bits"




@check("float32_matches_float64")
def _float32(case: Case):
    loss = case.make()
    a32 = [as_float(a, np.float32) for a in case.inputs(np.float32)]
    a64 = [as_float(a, np.float64) for a in a32]  # the same values, so only the arithmetic differs
    names = case.loss_class.differentiable
    v32, g32 = loss.forward_backward(*a32, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
    v64, g64 = loss.forward_backward(*a64, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
    pairs = [("value", v32, v64)] + [(f"gradient wrt {n}", a, b) for n, a, b in
                                    zip(names, as_tuple(g32, len(names)), as_tuple(g64, len(names)))]
    for what, lo, hi in pairs:
        scale = float(np.max(np.abs(np.asarray(hi, np.float64)), initial=0.0))
        if not close(lo, hi, F32_RTOL, F32_ATOL * scale):
            yield (f"float32 {what} strays from float64 beyond {F32_RTOL:g} relative (+{F32_ATOL:g} of the "
                   f"largest magnitude); {worst(lo, hi)}")




@check("reductions_consistent")
def _reductions(case: Case):
    # Each reduced configuration against its own 'none': 'sum' is the sum, 'mean' the sum over
    # mean_denominator (the element count unless the loss declares a weighted mean), 'batchmean'
    # the sum over input.shape[0] (torch's kl_div). Labelled with the reduction that is wrong.
    reduction = case.reduction
    if reduction == "none" or "none" not in case.loss_class.reductions:
        return
    arrays = case.inputs(np.float64)
    names = case.loss_class.differentiable
    none, reduced = case.make("none"), case.make()
    per_element = np.asarray(none(*arrays), np.float64)
    n, what = denominator(reduced, arrays, per_element)
    if not n:
        return
    value, expected = reduced(*arrays), per_element.sum() / n
    if not close(value, expected, REDUCTION_RTOL, 1e-12):
        yield f"{reduction!r} value {num(value)} != {what} = {num(expected)}{ratio(value, expected)}"
    ones = np.full(per_element.shape, SCALAR_GRAD_OUTPUT)
    g_none = as_tuple(none.backward(*arrays, grad_output=ones, wrt=names), len(names))
    g_red = as_tuple(reduced.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names), len(names))
    for name, gn, gr in zip(names, g_none, g_red):
        scaled = np.asarray(gr, np.float64) * n
        if not close(scaled, gn, REDUCTION_RTOL, 1e-14):
            label = "the 'none' gradient" if n == 1 else f"the 'none' gradient / {n:g}"
            yield (f"{reduction!r} gradient wrt {name} is not {label} (grad_output {SCALAR_GRAD_OUTPUT}); "
                   f"{worst(scaled, gn)}")


@check("forward_backward_fused")
def _fused(case: Case):
    loss = case.make()
    arrays = case.inputs(np.float64)
    names = case.loss_class.differentiable
    for go in grad_outputs(case, loss, arrays):
        value, grads = loss.forward_backward(*arrays, grad_output=go, wrt=names)
        if not close(value, loss.forward(*arrays), FUSED_RTOL):
            yield f"forward_backward value differs from forward; {worst(value, loss.forward(*arrays))}"
        separate = as_tuple(loss.backward(*arrays, grad_output=go, wrt=names), len(names))
        for name, fused, alone in zip(names, as_tuple(grads, len(names)), separate):
            if not close(fused, alone, FUSED_RTOL):
                yield f"forward_backward gradient wrt {name} differs from backward; {worst(fused, alone)}"
        first = loss.backward(*arrays, grad_output=go)
        if not close(first, separate[0], FUSED_RTOL):
            yield f"backward(wrt=None) is not the gradient wrt {names[0]}"




LARGE_REDUCTION_RTOL = {"float32": 2e-6, "float64": 1e-12}  # times the mean |element| (the conditioning)


@check("reduction_precise_at_large_n")
def _large_reduction(case: Case):
    # Summation-precision bugs (a float32 running sum, a naive loop) stay below every tolerance on
    # 15 elements and appear past tens of thousands: the reduced value on the large inputs against
    # the exactly rounded (math.fsum) sum of the 'none' values, in each dtype.
    if case.reduction == "none" or "none" not in case.loss_class.reductions:
        return
    for dtype in (np.float32, np.float64):
        arrays = shared(case, f"large-{np.dtype(dtype).name}", large_inputs, dtype)
        if arrays is None:
            return
        reduced = case.make()
        per_element = np.asarray(case.make("none")(*arrays), np.float64)
        n, what = denominator(reduced, arrays, per_element)
        if not n:
            return
        exact = math.fsum(per_element.ravel()) / n
        scale = math.fsum(np.abs(per_element).ravel()) / n
        got = float(reduced(*arrays))
        rtol = LARGE_REDUCTION_RTOL[np.dtype(dtype).name]
        if not abs(got - exact) <= rtol * scale:
            yield (f"{np.dtype(dtype).name} {case.reduction!r} value over {per_element.size} elements is "
                   f"{got!r}, the exact {what} is {exact!r} (error {abs(got - exact) / (scale or 1):.2g} of the "
                   f"mean |element|, allowed {rtol:g}): accumulate in float64")




SCALE_SUBSET_ELEMENTS = 2048  # the subset's size: below any chunk or parallel cutoff a kernel may have
SCALE_RTOL = 1e-10            # per-element math may differ between vector and scalar code paths


def row_subset(case: Case, arrays, per_row_loss) -> tuple | None:
    """The large inputs restricted to a random subset of rows, the row indices and the batched
    argument positions; None when the loss does not decompose by rows on these inputs (its 'none'
    value has no batch axis, or a row's value depends on other rows)."""
    rows = np.shape(per_row_loss)[0] if np.ndim(per_row_loss) else 0
    batched = [isinstance(a, np.ndarray) and a.ndim >= 1 and a.shape[0] == rows for a in arrays]
    if rows < 2 or not batched[0]:
        return None
    per_row = max(1, int(np.prod(np.shape(arrays[0])[1:])))
    take = max(1, min(rows // 2, SCALE_SUBSET_ELEMENTS // per_row))
    picked = np.sort(np.random.default_rng([case.seed, 7]).choice(rows, take, replace=False))
    subset = tuple(a[picked] if b else a for a, b in zip(arrays, batched))
    alone = np.asarray(case.make("none")(*subset), np.float64)
    if not close(alone, np.asarray(per_row_loss, np.float64)[picked], SCALE_RTOL, 1e-300):
        return None
    return subset, picked, batched


@check("gradient_at_scale")
def _gradient_at_scale(case: Case):
    # The gradient checks run on the sample inputs (15 elements); a chunked or parallel code path
    # runs only past some size, where nothing compared gradients. On the large inputs, a loss that
    # decomposes by rows (its 'none' value per row depends on that row alone, which is tested first)
    # must give, on a random subset of rows, the gradient of the same loss over those rows alone:
    # the 'sum' gradient as is, a 'mean' gradient times its denominator.
    cls = case.loss_class
    reduction = "sum" if "sum" in cls.reductions else "mean"
    if case.reduction != reduction or "none" not in cls.reductions:
        return
    arrays = shared(case, "large-float64", large_inputs, np.float64)
    if arrays is None:
        return
    per_row_loss = case.make("none")(*arrays)
    found = row_subset(case, arrays, per_row_loss)
    if found is None:
        return
    subset, picked, batched = found
    loss, names = case.make(), cls.differentiable
    full = as_tuple(loss.backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names), len(names))
    part = as_tuple(loss.backward(*subset, grad_output=SCALAR_GRAD_OUTPUT, wrt=names), len(names))
    scale_full = scale_part = 1.0
    if reduction == "mean":
        scale_full = denominator(loss, arrays, np.asarray(per_row_loss))[0]
        scale_part = denominator(loss, subset, np.asarray(case.make("none")(*subset)))[0]
    size = np.shape(arrays[0])
    for name, g_full, g_part in zip(names, full, part):
        if not batched[cls.arguments.index(name)]:
            continue
        got = np.asarray(g_full, np.float64)[picked] * scale_full
        want = np.asarray(g_part, np.float64) * scale_part
        if not close(got, want, SCALE_RTOL, 1e-300):
            yield (f"gradient wrt {name} on {np.prod(size):.0f} elements {size}, restricted to {len(picked)} random "
                   f"rows, differs from the gradient over those rows alone; {worst(got, want)}")




@check("finite_on_valid_domain")
def _finite(case: Case):
    # Several draws: a NaN on a sliver of the domain (a 0/0 at a tie, an overflow in a tail) should
    # not hide behind one lucky sample.
    loss = case.make()
    names = case.loss_class.differentiable
    for dtype, draw in itertools.product((np.float64, np.float32), range(FINITE_SEEDS)):
        arrays = case.inputs(dtype, draw)
        value, grads = loss.forward_backward(*arrays, grad_output=SCALAR_GRAD_OUTPUT, wrt=names)
        where = f"{np.dtype(dtype).name}, sample draw {draw}"
        if not np.all(np.isfinite(value)):
            yield f"value not finite on the sample inputs ({where}); {first_nonfinite(value, arrays, case)}"
        for name, grad in zip(names, as_tuple(grads, len(names))):
            if not np.all(np.isfinite(grad)):
                yield (f"gradient wrt {name} not finite on the sample inputs ({where}); "
                       f"{first_nonfinite(grad, arrays, case)}")


def first_nonfinite(result, arrays, case: Case) -> str:
    result = np.asarray(result)
    if result.ndim == 0:
        return f"got {num(result)}"
    j = tuple(int(i) for i in np.argwhere(~np.isfinite(result))[0])
    at = ", ".join(f"{n}={num(np.asarray(a)[j])}" for n, a in zip(case.loss_class.arguments, arrays)
                   if np.shape(a) == result.shape)
    return f"first at index {j}: {num(result[j])}" + (f" ({at})" if at else "")
