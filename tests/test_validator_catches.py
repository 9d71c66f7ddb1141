"""The validator catches subtle bugs, each by the check meant for it, and accepts correct losses with
kinks or bounded domains.

Every buggy loss is a one-method change to a correct loss written directly against ``le.Loss``
(so nothing in lossengine's own machinery can paper over the bug); ``test_reference_is_valid``
shows the unchanged loss passes, so each failure below is the bug's doing.
"""
import numpy as np
import pytest

import lossengine as le
from lossengine._threads import get_num_threads


class Squared(le.Loss):
    """(input - target)^2, reductions none/mean/sum, gradients wrt input and target."""
    name = "test_squared"
    arguments = ("input", "target")
    differentiable = ("input", "target")

    def values(self, x, y):
        return (x - y) ** 2

    def partials(self, x, y):
        d = x - y
        return {"input": 2.0 * d, "target": -2.0 * d}

    def reduce(self, v, dtype):
        if self.reduction == "none":
            return v.astype(dtype)
        total = np.sum(v, dtype=np.float64)
        return dtype.type(total / v.size if self.reduction == "mean" else total)

    def grad_scale(self, grad_output, n):
        return np.asarray(grad_output, np.float64) / (n if self.reduction == "mean" else 1)

    def forward(self, input, target):
        x, y = np.asarray(input), np.asarray(target)
        return self.reduce(self.values(x.astype(np.float64), y.astype(np.float64)), x.dtype)

    def backward(self, input, target, grad_output=1.0, wrt=None):
        names, single = self._resolve_wrt(wrt)
        x, y = np.asarray(input), np.asarray(target)
        partials = self.partials(x.astype(np.float64), y.astype(np.float64))
        scale = self.grad_scale(grad_output, x.size)
        grads = tuple((partials[n] * scale).astype(x.dtype) for n in names)
        return grads[0] if single else grads

    @classmethod
    def sample_inputs(cls, rng, dtype):
        return rng.standard_normal((3, 5)).astype(dtype), rng.standard_normal((3, 5)).astype(dtype)


def failed_checks(loss_class):
    report = le.check(loss_class)
    assert not report.ok, f"the validator accepted a buggy loss:\n{report}"
    return {f.check for f in report.failures}, report


def test_reference_is_valid():
    report = le.check(Squared)
    assert report.ok, str(report)


# -- one bug per class ------------------------------------------------------------------------------
def test_gradient_off_by_a_factor():
    class Bug(Squared):
        def partials(self, x, y):
            d = x - y
            return {"input": 1.0 * d, "target": -2.0 * d}      # forgot the 2 of d(d^2)

    checks, report = failed_checks(Bug)
    assert "gradient_vs_finite_differences" in checks
    assert "wrt input" in str(report) and "wrt target" not in str(report)


def test_gradient_off_by_a_small_factor():
    class Bug(Squared):
        def partials(self, x, y):
            d = x - y
            return {"input": 2.0001 * d, "target": -2.0001 * d}

    checks, _ = failed_checks(Bug)
    assert "gradient_vs_finite_differences" in checks


def test_mean_gradient_forgets_one_over_n():
    class Bug(Squared):
        def grad_scale(self, grad_output, n):
            return np.asarray(grad_output, np.float64)          # 'mean' treated like 'sum'

    checks, report = failed_checks(Bug)
    assert "reductions_consistent" in checks
    assert "'mean' gradient" in str(report)
    # Only 'mean' is wrong, and the finite differences on the 'mean' case say so too.
    assert all("reduction='mean'" in f.message or f.check == "reductions_consistent" for f in report.failures)


def test_ignored_grad_output():
    class Bug(Squared):
        def grad_scale(self, grad_output, n):
            return 1.0 / (n if self.reduction == "mean" else 1)

    checks, _ = failed_checks(Bug)
    assert "grad_output_respected" in checks
    assert "gradient_vs_finite_differences" in checks


def test_array_grad_output_reduced_to_its_mean():
    # Right for a scalar grad_output, wrong for 'none' with a per-element one.
    class Bug(Squared):
        def grad_scale(self, grad_output, n):
            return np.mean(grad_output) / (n if self.reduction == "mean" else 1)

    checks, report = failed_checks(Bug)
    assert "gradient_vs_finite_differences" in checks
    assert "array grad_output" in str(report)


def test_mutated_input():
    class Bug(Squared):
        def forward(self, input, target):
            x, y = np.asarray(input), np.asarray(target)
            np.subtract(x, y, out=x)                            # "saves an allocation"
            value = self.reduce(x.astype(np.float64) ** 2, x.dtype)
            np.add(x, y, out=x)                                 # ... and restores it, almost exactly
            return value

    checks, report = failed_checks(Bug)
    assert "inputs_unmodified" in checks
    assert "argument input" in str(report)


def test_gradient_aliasing_an_input():
    # d(sum(x * y))/dx = y, and a fast path for grad_output == 1 returns y: the caller's own target
    # array, which its next in-place update (an optimizer step on the gradient) silently corrupts.
    class Bug(Squared):
        name = "test_dot"
        differentiable = ("input",)

        def values(self, x, y):
            return x * y

        def partials(self, x, y):
            return {"input": y}

        def backward(self, input, target, grad_output=1.0, wrt=None):
            names, single = self._resolve_wrt(wrt)
            y = np.asarray(target)
            if self.reduction == "sum" and np.ndim(grad_output) == 0 and grad_output == 1.0:
                return y if single else (y,)
            return super().backward(input, target, grad_output=grad_output, wrt=wrt)

    checks, report = failed_checks(Bug)
    assert checks == {"outputs_not_aliased"}, str(report)
    assert "gradient wrt input shares memory with argument target" in str(report)


def test_wrong_dtype():
    class Bug(Squared):
        def backward(self, input, target, grad_output=1.0, wrt=None):
            names, single = self._resolve_wrt(wrt)
            x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
            partials = self.partials(x, y)                      # float32 in, float64 out
            grads = tuple(partials[n] * self.grad_scale(grad_output, x.size) for n in names)
            return grads[0] if single else grads

    checks, report = failed_checks(Bug)
    assert checks == {"shapes_and_dtypes"}, str(report)
    assert "float32" in str(report)


def test_wrong_value_dtype():
    class Bug(Squared):
        def reduce(self, v, dtype):
            return super().reduce(v, np.dtype(np.float64))

    checks, report = failed_checks(Bug)
    assert checks == {"shapes_and_dtypes"}, str(report)


def test_wrong_shape():
    class Bug(Squared):
        def backward(self, input, target, grad_output=1.0, wrt=None):
            grads = super().backward(input, target, grad_output=grad_output, wrt=wrt)
            return tuple(g.ravel() for g in grads) if isinstance(grads, tuple) else grads.ravel()

    checks, report = failed_checks(Bug)
    assert "shapes_and_dtypes" in checks
    assert "(15,)" in str(report)


def test_scalar_reduction_returned_as_array():
    class Bug(Squared):
        def reduce(self, v, dtype):
            out = super().reduce(v, dtype)
            return np.asarray(out).reshape(1) if self.reduction != "none" else out

    checks, _ = failed_checks(Bug)
    assert "shapes_and_dtypes" in checks


def test_wrong_target_gradient():
    class Bug(Squared):
        def partials(self, x, y):
            d = x - y
            return {"input": 2.0 * d, "target": 2.0 * d}       # lost the chain rule's minus

    checks, report = failed_checks(Bug)
    assert "gradient_vs_finite_differences" in checks
    assert "wrt target" in str(report) and "wrt input" not in str(report)


def test_gradients_returned_in_the_wrong_order():
    class Bug(Squared):
        def backward(self, input, target, grad_output=1.0, wrt=None):
            names, single = self._resolve_wrt(wrt)
            x, y = np.asarray(input, np.float64), np.asarray(target, np.float64)
            partials = self.partials(x, y)
            ordered = [n for n in self.differentiable if n in names]     # ignores the order asked
            grads = tuple((partials[n] * self.grad_scale(grad_output, x.size)).astype(np.asarray(input).dtype)
                          for n in ordered)
            return grads[0] if single else grads

    checks, _ = failed_checks(Bug)
    assert checks == {"wrt_selection"}


def test_nondeterministic():
    class Bug(Squared):
        def values(self, x, y):
            jitter = 1.0 + 1e-15 * np.random.default_rng().standard_normal(x.shape)
            return (x - y) ** 2 * jitter

    checks, _ = failed_checks(Bug)
    assert "deterministic_and_thread_invariant" in checks


def test_thread_count_dependent_sum():
    # Per-thread partial sums combined in thread order: right to the last bits, but which bits
    # depends on the thread count. It shows only on inputs big enough to be split.
    class Bug(Squared):
        def reduce(self, v, dtype):
            if self.reduction == "none":
                return v.astype(dtype)
            total = 0.0
            for chunk in np.array_split(v.ravel(), get_num_threads()):
                total += float(np.cumsum(chunk)[-1])             # one thread's running sum
            return dtype.type(total / v.size if self.reduction == "mean" else total)

        @classmethod
        def large_sample_inputs(cls, rng, dtype):
            return tuple(rng.standard_normal((300, 301)).astype(dtype) for _ in range(2))

    checks, report = failed_checks(Bug)
    assert checks == {"deterministic_and_thread_invariant"}, str(report)
    assert "threads gave different bits (large inputs)" in str(report)


def test_thread_count_dependent_elementwise_kernel():
    # The same bug in an elementwise loss: the validator builds the large inputs itself.
    class Bug(le.NumpyElementwiseLoss):
        name = "test_threaded_squares"
        arguments = ("input", "target")

        def element_loss(self, x, y):
            return (x - y) ** 2

        def element_partials(self, x, y):
            return (2.0 * (x - y),)

        def _compute(self, arrays, want_value, wrt, grad_output):
            value, grads = super()._compute(arrays, want_value, wrt, grad_output)
            if want_value and self.reduction != "none":        # a hand-parallelized reduction
                v = (np.asarray(arrays[0], np.float64) - arrays[1]) ** 2
                total = sum(float(np.cumsum(c)[-1]) for c in np.array_split(v.ravel(), get_num_threads()))
                value = value.dtype.type(total / v.size if self.reduction == "mean" else total)
            return value, grads

    report = le.check(Bug)
    assert not report.ok
    assert {f.check for f in report.failures} >= {"deterministic_and_thread_invariant"}
    assert "(large inputs)" in str(report)


def test_nan_inside_the_valid_domain():
    # d/dx |d|^2 written as 2 |d| sign(d) via d / |d|: 0/0 wherever input == target, which this
    # loss's sample inputs (integer-valued, like counts) hit.
    class Bug(Squared):
        def partials(self, x, y):
            d = x - y
            with np.errstate(invalid="ignore", divide="ignore"):
                unit = d / np.abs(d)
            return {"input": 2.0 * np.abs(d) * unit, "target": -2.0 * np.abs(d) * unit}

        @classmethod
        def sample_inputs(cls, rng, dtype):
            return (rng.integers(0, 6, (3, 5)).astype(dtype), rng.integers(0, 6, (3, 5)).astype(dtype))

    checks, report = failed_checks(Bug)
    assert "finite_on_valid_domain" in checks
    assert "gradient wrt input not finite" in str(report)


def test_nan_on_a_sliver_of_the_domain():
    # log(1 + exp(x)) computed as x + log(1 + exp(-x)) ... except that this version takes
    # log(exp(x) + 1) - 0 for x < 0 and x + log1p(exp(-x)) for x >= 0, and returns NaN exactly at
    # the seam x == 0.5 rounded to one decimal, which one in ten samples hits.
    class Bug(Squared):
        name = "test_softplus"
        differentiable = ("input",)

        def values(self, x, y):
            return np.logaddexp(0.0, x) + np.where(np.round(x, 1) == 0.5, np.nan, 0.0) + 0.0 * y

        def partials(self, x, y):
            return {"input": 1.0 / (1.0 + np.exp(-x))}

        @classmethod
        def sample_inputs(cls, rng, dtype):
            return (np.round(rng.uniform(-1, 1, (3, 5)), 1).astype(dtype), np.zeros((3, 5), dtype))

    checks, _ = failed_checks(Bug)
    assert "finite_on_valid_domain" in checks


def test_float32_path_computed_in_half_precision():
    class Bug(Squared):
        def forward(self, input, target):
            x, y = np.asarray(input), np.asarray(target)
            if x.dtype == np.float32:                           # a "fast" float32 path
                return self.reduce(self.values(x.astype(np.float16), y.astype(np.float16)), x.dtype)
            return super().forward(input, target)

    checks, report = failed_checks(Bug)
    assert "float32_matches_float64" in checks
    assert "float32 value" in str(report)


def test_float32_path_with_cancellation():
    # BCE on logits as -(t log s + (1 - t) log(1 - s)), s = sigmoid(x) in float32: 1 - s loses its
    # digits as x grows, and a confident classifier's logits reach 10 and more. float64 hides the flaw.
    # (The validator sees only the range sample_inputs covers: samples of 4 N(0, 1) would not show it.)
    class Bug(Squared):
        name = "test_bce_logits"
        differentiable = ("input",)

        def values(self, x, y):
            s = 1.0 / (1.0 + np.exp(-x))
            return -(y * np.log(s) + (1.0 - y) * np.log(1.0 - s))

        def partials(self, x, y):
            return {"input": 1.0 / (1.0 + np.exp(-x)) - y}

        def forward(self, input, target):
            x, y = np.asarray(input), np.asarray(target)
            return self.reduce(self.values(x, y), x.dtype)     # computes in the caller's dtype

        @classmethod
        def sample_inputs(cls, rng, dtype):
            return rng.uniform(-12.0, 12.0, (3, 5)).astype(dtype), rng.uniform(0, 1, (3, 5)).astype(dtype)

    checks, report = failed_checks(Bug)
    assert checks == {"float32_matches_float64"}, str(report)


# -- correct losses the validator must accept ----------------------------------------------------
class AbsoluteError(Squared):
    """|input - target|: kinked at 0, which integer-valued samples hit exactly."""
    name = "test_abs"

    def values(self, x, y):
        return np.abs(x - y)

    def partials(self, x, y):
        s = np.sign(x - y)
        return {"input": s, "target": -s}

    @classmethod
    def sample_inputs(cls, rng, dtype):
        return rng.integers(-2, 3, (4, 5)).astype(dtype), rng.integers(-2, 3, (4, 5)).astype(dtype)


class Hinge(Squared):
    """max(0, 1 - input * target), target in {-1, 1}: a kink on the hinge, hit by the samples."""
    name = "test_hinge"
    differentiable = ("input",)

    def values(self, x, y):
        return np.maximum(0.0, 1.0 - x * y)

    def partials(self, x, y):
        return {"input": np.where(1.0 - x * y > 0.0, -y, 0.0)}

    @classmethod
    def sample_inputs(cls, rng, dtype):
        y = rng.choice([-1.0, 1.0], (4, 5))
        x = rng.uniform(-2.0, 2.0, (4, 5))
        x[0] = y[0]                                             # exactly on the hinge
        return x.astype(dtype), y.astype(dtype)


class LogLoss(Squared):
    """-(t log p + (1 - t) log(1 - p)) for p in (0, 1): a bounded domain, declared by the samples."""
    name = "test_log_loss"
    differentiable = ("input", "target")

    def values(self, p, t):
        return -(t * np.log(p) + (1.0 - t) * np.log1p(-p))

    def partials(self, p, t):
        return {"input": (p - t) / (p * (1.0 - p)), "target": np.log1p(-p) - np.log(p)}

    @classmethod
    def sample_inputs(cls, rng, dtype):
        return rng.uniform(0.02, 0.98, (3, 5)).astype(dtype), rng.uniform(0.0, 1.0, (3, 5)).astype(dtype)


class Pinball(le.NumpyElementwiseLoss):
    """The quantile loss: kinked at input == target, with an option checked in several settings."""
    name = "test_pinball"
    arguments = ("input", "target")
    differentiable = ("input", "target")
    check_options = ({"quantile": 0.1}, {"quantile": 0.9})

    def __init__(self, quantile=0.5, reduction="mean"):
        super().__init__(reduction)
        self.quantile = quantile

    def element_loss(self, x, y):
        d = y - x
        return np.maximum(self.quantile * d, (self.quantile - 1.0) * d)

    def element_partials(self, x, y):
        d = y - x
        dd = np.where(d > 0, self.quantile, self.quantile - 1.0)
        return -dd, dd

    @classmethod
    def sample_inputs(cls, rng, dtype):
        x = rng.standard_normal((3, 5))
        y = rng.standard_normal((3, 5))
        y[1] = x[1]
        return x.astype(dtype), y.astype(dtype)


@pytest.mark.parametrize("loss_class", [AbsoluteError, Hinge, LogLoss, Pinball])
def test_correct_losses_with_kinks_or_bounded_domains_pass(loss_class):
    report = le.check(loss_class)
    assert report.ok, str(report)


def test_bounded_domain_outside_its_samples_is_not_held_against_the_loss():
    # The same log loss, sampled outside (0, 1), is NaN there: the samples are what declare the domain.
    class Outside(LogLoss):
        @classmethod
        def sample_inputs(cls, rng, dtype):
            return rng.uniform(-0.5, 1.5, (3, 5)).astype(dtype), rng.uniform(0, 1, (3, 5)).astype(dtype)

    with np.errstate(all="ignore"):
        checks, _ = failed_checks(Outside)
    assert "finite_on_valid_domain" in checks


def test_float32_running_sum_caught_at_large_n():
    # Sums in the input's dtype, one element after another: exact enough on 15 elements, off by
    # ~1e-4 relative over 65,000 float32 elements.
    class Bug(Squared):
        def reduce(self, v, dtype):
            if self.reduction == "none":
                return v.astype(dtype)
            total = np.cumsum(v.astype(dtype), dtype=dtype)[-1]
            return dtype.type(total / v.size if self.reduction == "mean" else total)

        @classmethod
        def large_sample_inputs(cls, rng, dtype):
            return rng.standard_normal((257, 256)).astype(dtype), rng.standard_normal((257, 256)).astype(dtype)

    checks, report = failed_checks(Bug)
    assert checks == {"reduction_precise_at_large_n"}, str(report)
    assert "float32 'mean'" in str(report) and "float32 'sum'" in str(report)
    assert "float64 '" not in str(report)


# -- what users pass: other layouts, and gradients past a chunk or parallel cutoff -------------------
def test_gradient_in_memory_order_is_caught_for_fortran_and_strided_inputs():
    class Bug(Squared):
        def backward(self, input, target, grad_output=1.0, wrt=None):
            # Right for C-ordered input: the gradient computed in memory order, reshaped in C order.
            grads = super().backward(input, target, grad_output=grad_output, wrt=wrt)
            x = np.asarray(input)
            fix = lambda g: np.ravel(g, order="F").reshape(x.shape) if x.flags.f_contiguous else g  # noqa: E731
            return tuple(fix(g) for g in grads) if isinstance(grads, tuple) else fix(grads)

    checks, report = failed_checks(Bug)
    assert checks == {"layout_invariant"}, str(report)
    assert "input given Fortran-ordered changes the gradient wrt input" in str(report)


def test_gradient_wrong_for_strided_views_is_caught():
    class Bug(Squared):
        def backward(self, input, target, grad_output=1.0, wrt=None):
            x = np.asarray(input)
            grads = super().backward(input, target, grad_output=grad_output, wrt=wrt)
            if x.ndim and not x.flags.c_contiguous and not x.flags.f_contiguous:
                grads = tuple(g[..., ::-1].copy() for g in grads) if isinstance(grads, tuple) else grads[..., ::-1].copy()
            return grads

    checks, report = failed_checks(Bug)
    assert checks == {"layout_invariant"}, str(report)
    assert "given a strided view" in str(report)


def test_gradient_off_past_4096_elements_is_caught_at_scale():
    class Bug(Squared):
        def grad_scale(self, grad_output, n):
            # A chunked or parallel path taken on large inputs only, 2% off.
            return super().grad_scale(grad_output, n) * (1.02 if n > 4096 else 1.0)

    checks, report = failed_checks(Bug)
    assert checks == {"gradient_at_scale"}, str(report)
    assert "restricted to" in str(report) and "got/expected = 1.02x" in str(report)


def test_gradient_at_scale_reaches_a_minimal_plugin():
    # forward + backward only, no sample_inputs: the default sampler's inputs are grown past the cutoff.
    class Minimal(le.Loss):
        name = "test_minimal_chunked"
        arguments = ("input", "target")
        differentiable = ("input",)

        def forward(self, input, target):
            return Squared(reduction=self.reduction).forward(input, target)

        def backward(self, input, target, grad_output=1.0, wrt=None):
            g = Squared(reduction=self.reduction).backward(input, target, grad_output=grad_output, wrt="input")
            return g * g.dtype.type(1.02) if g.size > 4096 else g

    checks, report = failed_checks(Minimal)
    assert "gradient_at_scale" in checks, str(report)


def test_a_loss_whose_rows_interact_is_not_held_to_row_decomposition():
    class Coupled(Squared):
        """(x - y)^2 + mean(x): every value depends on the whole input."""
        def values(self, x, y):
            return (x - y) ** 2 + x.mean()

        def backward(self, input, target, grad_output=1.0, wrt=None):
            names, single = self._resolve_wrt(wrt)
            x, y = np.asarray(input), np.asarray(target)
            d = x.astype(np.float64) - y
            go = np.broadcast_to(self.grad_scale(grad_output, x.size), x.shape)
            grads = {"input": 2.0 * d * go + go.sum() / x.size, "target": -2.0 * d * go}
            out = tuple(grads[n].astype(x.dtype) for n in names)
            return out[0] if single else out

    report = le.check(Coupled)
    assert report.ok, str(report)
    assert any(c.startswith("gradient_at_scale:") for c in report.checks_run)
