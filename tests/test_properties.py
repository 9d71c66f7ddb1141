"""Property-based tests (hypothesis) over every registered loss: built-ins, families other lanes add
and plugins alike. Strategies come from each loss's declaration, never from a per-loss list:

- arrays from ``sample_inputs`` (the validator's sampler) or, for losses that use the default
  sampler, from the declared ``domains`` at a drawn shape (0-d, 0-size, 1 to 3 axes);
- options from ``options``: defaults, ``examples``, the bounds parsed from ``constraint`` and values
  just outside them, NaN/inf, huge Python ints, wrong types;
- hostile values spliced into the arrays (NaN, +-inf, 1e308, denormals, -0.0), class indices out of
  range, every layout (Fortran, strided, big-endian, read-only).

Properties: every call gives a result or a clean ValueError/TypeError/IndexError; inputs are never
modified; every layout is bit-identical to the contiguous copy; forward_backward is forward plus
backward, bit for bit; results are bit-identical for 1 and 2 threads; float32 is close to float64
on well-conditioned inputs; values and gradients equal torch's where torch is installed.

Profiles: "ci" (the default, bounded: the file runs in about a minute on 2 cores) and "dev"
(``HYPOTHESIS_PROFILE=dev pytest tests/test_properties.py``: 20x the examples, no deadline).
Every failure hypothesis shrinks is committed as a plain test in tests/test_reliability_regressions.py.
Cases of a defect already known (issue #15) are skipped through ``reliability_cases.KNOWN_DEFECTS``, by name, so the
property stays green and the entry is removed once the defect is fixed.
"""
from __future__ import annotations

import inspect
import math
import os
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lossengine as le  # noqa: E402
from lossengine.declaration import declared_options  # noqa: E402
from reliability_cases import (  # noqa: E402
    GRAD_OUTPUTS, HOSTILE_GRAD_OUTPUTS, HOSTILE_INDICES, LAYOUTS, SPECIAL_FLOATS, Case, _largest, assert_identical, call, domain_inputs,
    flat, large_inputs, known_defect, layout, option_candidates, outcome, uses_default_sampler)

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True,
                          suppress_health_check=list(HealthCheck), print_blob=True)
settings.register_profile("dev", max_examples=1000, deadline=None,
                          suppress_health_check=list(HealthCheck), print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

NAMES = le.registry.names()
shapes = st.one_of(st.just(()), st.lists(st.integers(0, 4), min_size=1, max_size=3).map(tuple))


@st.composite
def cases(draw, name: str, hostile: bool = True, dtypes=(np.float32, np.float64)) -> Case:
    cls = le.registry.get(name)
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    notes = set()
    if uses_default_sampler(cls) and draw(st.booleans()):
        shape = draw(shapes)
        arrays = domain_inputs(cls, rng, dtype, shape)
        notes.add("shape")
    else:
        arrays = [np.array(a) for a in cls.sample_inputs(rng, dtype)]
    first = np.asarray(arrays[0])
    classes = first.shape[1] if first.ndim >= 2 else (first.shape[0] if first.ndim else 1)
    options = {}
    for option in declared_options(cls):
        if draw(st.booleans()):
            options[option.name] = draw(st.sampled_from(option_candidates(option, hostile, classes, first.shape)))
    if hostile and draw(st.booleans()):
        notes.add("values")
        for k, a in enumerate(arrays):
            if not isinstance(a, np.ndarray) or a.size == 0:
                continue
            if a.dtype.kind == "f":
                for _ in range(draw(st.integers(1, 3))):
                    with np.errstate(over="ignore"):    # 1e308 in float32 is inf, as meant
                        a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from(SPECIAL_FLOATS))
            elif a.dtype.kind in "iu" and draw(st.booleans()):
                a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from(
                    HOSTILE_INDICES + (classes, classes + 1)))
    grad_output = draw(st.sampled_from(GRAD_OUTPUTS + (HOSTILE_GRAD_OUTPUTS if hostile else [])))
    wrt = draw(st.sampled_from([None, *cls.differentiable, tuple(cls.differentiable)]))
    return Case(cls, options, arrays, grad_output, wrt, notes)



def skip_known(case: Case) -> None:
    defect = known_defect(case)
    assume(defect is None)


# -- the properties ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_result_or_clean_error_and_inputs_unmodified(name, data):
    case = data.draw(cases(name))
    skip_known(case)
    before = [np.array(a, copy=True) for a in case.arrays]
    for method in ("forward", "backward", "forward_backward"):
        outcome(lambda: call(case, method=method))    # a crash or another exception type fails here
        for a, b in zip(case.arrays, before):
            assert_identical(("ok", a), ("ok", b), f"{method} modified an input")


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_layouts_bit_identical_to_contiguous(name, data):
    case = data.draw(cases(name))
    skip_known(case)
    how = data.draw(st.sampled_from(LAYOUTS))
    moved = [layout(a, how) if isinstance(a, np.ndarray) else a for a in case.arrays]
    assert_identical(outcome(lambda: call(case)), outcome(lambda: call(case, moved)), how)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_forward_backward_is_forward_plus_backward(name, data):
    case = data.draw(cases(name))
    skip_known(case)
    fused = outcome(lambda: call(case))
    value = outcome(lambda: call(case, method="forward"))
    grads = outcome(lambda: call(case, method="backward"))
    if fused[0] == "ok":
        assert_identical(("ok", fused[1][0]), value, "value")
        assert_identical(("ok", fused[1][1]), grads, "gradients")
    else:   # the fused call refused: so does the backward (the forward may not need grad_output)
        assert grads[0] == "error", f"forward_backward raised {fused[1].__name__}, backward did not"


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=max(3, settings().max_examples // 5))
@given(data=st.data())
def test_bit_identical_across_thread_counts(name, data):
    case = data.draw(cases(name, hostile=False))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    case = Case(case.cls, case.options, large_inputs(case.cls, rng, case.arrays[0].dtype), case.grad_output,
                case.wrt, case.notes)
    skip_known(case)
    with le.threads(1):
        one = outcome(lambda: call(case))
    with le.threads(2):
        two = outcome(lambda: call(case))
    assert_identical(one, two, "1 vs 2 threads")


def _close(a, b, rtol: float, what: str, scale: float | None = None) -> None:
    """Equal within ``rtol`` of the larger of 1, ``scale`` and the largest finite expected value."""
    for x, y in zip(flat(a), flat(b)):
        x, y = x.astype(np.float64), y.astype(np.float64)
        assert x.shape == y.shape, what
        both_nan = np.isnan(x) & np.isnan(y)
        scale = max(1.0, scale or 0.0, float(np.max(np.abs(y[np.isfinite(y)]), initial=0.0)))
        ok = both_nan | (x == y) | (np.abs(x - y) <= rtol * scale)
        assert ok.all(), f"{what}: {x[~ok][:5]} vs {y[~ok][:5]}"


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_float32_close_to_float64(name, data):
    # Valid inputs from the declared domains (well inside them), drawn in float32 and widened, so
    # both precisions compute the same mathematical function of the same numbers.
    case = data.draw(cases(name, hostile=False, dtypes=(np.float32,)))
    skip_known(case)
    wide = [a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype == np.float32 else a for a in case.arrays]
    options64 = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
                 for k, v in case.options.items()}
    f32 = outcome(lambda: call(case))
    f64 = outcome(lambda: call(Case(case.cls, options64, wide, case.grad_output, case.wrt)))
    assert f32[0] == f64[0], f"float32 {f32} vs float64 {f64}"
    if f32[0] == "ok":
        _close(f32[1], f64[1], 2e-4, "float32 vs float64")


# -- torch parity -------------------------------------------------------------------------------------
def torch_function(cls: type):
    if getattr(cls, "reference", "torch") != "torch":
        return None
    torch = pytest.importorskip("torch")
    return getattr(torch.nn.functional, cls.name, None)


# Gradients torch defines differently, documented in the README: CTC's torch gradient is wrt the
# logits (exp(log_probs) - gamma), lossengine's the true one wrt log_probs.
TORCH_GRADIENT_DIFFERS = {"ctc_loss"}


# Finite values at float64's edges. No denormals: where one meets a division, torch's result is an
# artifact of its backward's rounding order (PoissonNLL, log_input=False, eps=0, x = t = 5e-324:
# torch's input gradient is 1/N because (1/N) * t underflows to 0 before the division by x; the
# exact 1 - t/x = 0 is lossengine's). The other properties do splice denormals in.
EXTREME_FINITE = (1e308, -1e308, 1e300, -0.0, 3.4e38, 1e-300, 700.0, -750.0)


def torch_case(name: str, data, extreme: bool):
    """A float64 case for torch's counterpart, its options restricted to those torch has; with
    ``extreme``, finite values at the edges of float64 spliced into the arrays."""
    cls = le.registry.get(name)
    fn = torch_function(cls)
    if fn is None:
        pytest.skip(f"{name}: no torch.nn.functional counterpart")
    case = data.draw(cases(name, hostile=False, dtypes=(np.float64,)))
    params = inspect.signature(fn).parameters
    # An option torch does not have (CTC's from_logits) is compared only at its default.
    for option in declared_options(cls):
        if option.name not in params:
            assume(case.options.get(option.name, option.default) == option.default)
            case.options.pop(option.name, None)
    if extreme:
        case.notes.add("extreme")
        for a in case.arrays:
            if a.dtype.kind == "f" and a.size:
                for _ in range(data.draw(st.integers(1, 3))):
                    a.flat[data.draw(st.integers(0, a.size - 1))] = data.draw(st.sampled_from(EXTREME_FINITE))
        for key, value in list(case.options.items()):
            if isinstance(value, np.ndarray) and value.size and data.draw(st.booleans()):
                value = value.copy()
                value.flat[data.draw(st.integers(0, value.size - 1))] = data.draw(st.sampled_from(EXTREME_FINITE))
                case.options[key] = value
    skip_known(case)
    return cls, fn, case


def torch_result(cls, fn, case):
    """(value, gradient wrt the first differentiable argument) from torch, or None if torch refuses."""
    import torch
    tensors = [torch.tensor(a, dtype=torch.int64 if a.dtype.kind in "iu" else torch.float64,
                            requires_grad=a.dtype.kind == "f") for a in map(np.asarray, case.arrays)]
    kwargs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in case.options.items()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = fn(*tensors, **kwargs)
            k = cls.arguments.index(cls.differentiable[0])
            grad = torch.autograd.grad(value.sum(), tensors[k], allow_unused=True)[0]
    except (RuntimeError, ValueError, IndexError, TypeError):
        return None     # torch refuses; whether we do is the clean-error property's business
    return value.detach().numpy(), (None if grad is None else grad.numpy())


def _broadcasts_into(shape: tuple, to: tuple) -> bool:
    try:
        return np.broadcast_shapes(shape, to) == tuple(to)
    except ValueError:
        return False


def assert_matches_torch(name, cls, case, expected, finite_only: bool) -> None:
    ours = outcome(lambda: case.make().forward_backward(*case.arrays, wrt=cls.differentiable[0]))
    if ours[0] == "error" and any(np.asarray(a).size == 0 for a in case.arrays):
        return      # the README's documented refusals of empty class axes (torch: degenerate NaN/-0)
    if ours[0] == "error" and ours[1] is ValueError and not all(
            _broadcasts_into(v.shape, np.shape(case.arrays[0])) for v in case.options.values() if isinstance(v, np.ndarray)):
        return      # a weight torch broadcasts beyond the input's shape: refused, as the README says
    assert ours[0] == "ok", f"torch computes {expected[0]}, lossengine raised {ours[1].__name__}"
    reduced = case.options.get("reduction", "mean") != "none"
    if reduced and any(np.asarray(a).size == 0 for a in case.arrays):
        # A reduction over nothing: torch returns NaN, 0 or uninitialized memory (4.7e-310 from
        # multi_margin_loss on (0, 1)); lossengine's is NaN (a mean over nothing) or 0 (a sum).
        assert np.isnan(ours[1][0]) or ours[1][0] == 0, ours[1][0]
        return
    pairs = [(ours[1][0], expected[0], "value")]
    if name not in TORCH_GRADIENT_DIFFERS and expected[1] is not None:
        pairs.append((ours[1][1], expected[1], "gradient"))
    for got, want, what in pairs:
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        scale = None
        if finite_only:     # where torch is finite we must be too, and equal
            keep = np.isfinite(want)
            got, want = got[keep], want[keep]
            if what == "value" and reduced:
                # A sum of terms near 1e308 is known only to ~1e-16 of them (cancellation: the
                # summation order decides the rest), so the reduced value is compared at that scale.
                scale = _largest(case)
        _close((got,), (want,), 1e-9, f"{what} vs torch", scale)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_equal_to_torch(name, data):
    cls, fn, case = torch_case(name, data, extreme=False)
    expected = torch_result(cls, fn, case)
    if expected is not None:
        assert_matches_torch(name, cls, case, expected, finite_only=False)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_equal_to_torch_where_torch_is_finite_on_extreme_values(name, data):
    cls, fn, case = torch_case(name, data, extreme=True)
    expected = torch_result(cls, fn, case)
    if expected is not None:
        assert_matches_torch(name, cls, case, expected, finite_only=True)
