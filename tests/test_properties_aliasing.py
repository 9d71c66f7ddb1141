"""Property tests (hypothesis) for outputs that overlap what a call reads and for options assigned
after construction, over every registered loss:

- the overlap rule: an ``out=`` / ``value_out=`` array drawn to share memory with an input array,
  ``grad_output``, an array the loss holds (its option arrays) or another output is refused with a
  ValueError, nothing the call reads is modified, and the loss computes as before afterwards;
- the option rule: a drawn sequence of option assignments (valid and invalid values) onto a loss
  that has already run leaves it computing exactly what a fresh instance with its current options
  computes; a refused assignment keeps the old value.

Strategies come from the declarations (``sample_inputs``, ``options`` through
``reliability_cases.option_candidates``), so plugins and new losses are covered the day they are
registered. Profiles as tests/test_properties.py ("ci" by default, HYPOTHESIS_PROFILE=dev for more).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lossengine as le  # noqa: E402
from lossengine.declaration import declared_options  # noqa: E402
from reliability_cases import assert_identical, option_candidates, outcome  # noqa: E402

# tests/test_properties.py's profiles, "ci" (40 examples per test and loss, derandomized) and "dev"
# (1000), applied per test: a global profile registered here would depend on the import order.
DEV = os.environ.get("HYPOTHESIS_PROFILE") == "dev"
PROFILE = settings(max_examples=1000 if DEV else 40, derandomize=not DEV, deadline=None,
                   suppress_health_check=list(HealthCheck), print_blob=True)

NAMES = le.registry.names()


def _inputs(draw, cls, dtype):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    return [np.array(a) for a in cls.sample_inputs(rng, dtype)]


def _candidates(option, arrays, hostile: bool) -> list:
    """option_candidates for these arrays (the class count: axis 1, or the only axis)."""
    first = np.asarray(arrays[0])
    classes = first.shape[1] if first.ndim >= 2 else (first.shape[0] if first.ndim else 1)
    return option_candidates(option, hostile, classes, first.shape)


def _valid_options(draw, cls, arrays) -> dict:
    return {option.name: draw(st.sampled_from(_candidates(option, arrays, False)))
            for option in declared_options(cls) if draw(st.booleans())}


def _sharing(source: np.ndarray, shape: tuple, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """(a copy of ``source`` and an array of ``shape``) that overlap: both views of one buffer, the
    second starting ``shift`` elements after the first."""
    n = max(source.size, shift + int(np.prod(shape)))
    buffer = np.zeros(n, source.dtype)
    buffer[:source.size] = source.reshape(-1)
    return buffer[:source.size].reshape(source.shape), buffer[shift:shift + int(np.prod(shape))].reshape(shape)


@pytest.mark.parametrize("name", NAMES)
@PROFILE
@given(data=st.data())
def test_aliasing_outputs_are_refused_and_nothing_read_changes(name, data):
    cls = le.registry.get(name)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    arrays = _inputs(data.draw, cls, dtype)
    reduction = data.draw(st.sampled_from([r for r in cls.reductions if r in ("none", "mean", "sum")]))
    options = dict(_valid_options(data.draw, cls, arrays), reduction=reduction)
    outcome_loss = outcome(lambda: cls(**options))
    assume(outcome_loss[0] == "ok")
    loss = outcome_loss[1]
    wrt = tuple(cls.differentiable)
    grad_output = 1.0
    if reduction == "none":
        value = outcome(lambda: loss.forward(*arrays))
        assume(value[0] == "ok" and np.ndim(value[1]) > 0)
        grad_output = np.linspace(0.5, 1.5, np.size(value[1])).reshape(np.shape(value[1])).astype(dtype)
    expected = outcome(lambda: loss.forward_backward(*arrays, grad_output=grad_output, wrt=wrt))
    assume(expected[0] == "ok")
    grads = expected[1][1]
    outs = [np.empty_like(g) for g in grads]
    value_out = None

    targets = ["argument", "grad_output", "option", "other out"]
    target = data.draw(st.sampled_from(targets))
    k = data.draw(st.integers(0, len(outs) - 1))
    shift = data.draw(st.integers(0, 2))
    if target == "argument":
        candidates = [j for j, a in enumerate(arrays) if a.dtype == outs[k].dtype]
        assume(candidates)
        j = data.draw(st.sampled_from(candidates))
        arrays[j], outs[k] = _sharing(arrays[j], outs[k].shape, shift)
        expect = "an input array"
    elif target == "grad_output":
        assume(isinstance(grad_output, np.ndarray) and grad_output.dtype == outs[k].dtype)
        grad_output, outs[k] = _sharing(grad_output, outs[k].shape, shift)
        expect = "grad_output"
    elif target == "option":
        held = [(n, v) for n, v in vars(loss).items() if isinstance(v, np.ndarray) and not n.startswith("_")
                and v.dtype == outs[k].dtype and v.size >= outs[k].size and v.flags.c_contiguous]
        assume(held)
        option, array = data.draw(st.sampled_from(held))
        outs[k] = array.reshape(-1)[:outs[k].size].reshape(outs[k].shape)
        expect = f"the loss's option '{option}'"
    else:
        if len(outs) >= 2:
            other = data.draw(st.sampled_from([j for j in range(len(outs)) if j != k]))
            assume(outs[other].dtype == outs[k].dtype)
            outs[k], outs[other] = _sharing(outs[k], outs[other].shape, shift)
            expect = "another out array"
        else:
            assume(reduction == "none" and isinstance(expected[1][0], np.ndarray)
                   and expected[1][0].dtype == outs[k].dtype)
            outs[k], value_out = _sharing(outs[k], expected[1][0].shape, shift)
            expect = "value_out shares memory with an out array"

    read_before = [np.array(a, copy=True) for a in arrays] + [np.array(grad_output, copy=True)]
    held_before = {n: v.copy() for n, v in vars(loss).items() if isinstance(v, np.ndarray)}
    with pytest.raises(ValueError, match="shares memory") as refused:
        loss.forward_backward(*arrays, grad_output=grad_output, wrt=wrt, out=tuple(outs), value_out=value_out)
    assert expect in str(refused.value)
    for a, b in zip(list(arrays) + [np.asarray(grad_output)], read_before):
        assert_identical(("ok", a), ("ok", b), "a read array changed")
    for n, v in held_before.items():
        assert_identical(("ok", getattr(loss, n)), ("ok", v), f"the loss's {n} changed")
    assert_identical(outcome(lambda: loss.forward_backward(*arrays, grad_output=grad_output, wrt=wrt)),
                     expected, "the loss after a refused call")


@pytest.mark.parametrize("name", NAMES)
@PROFILE
@given(data=st.data())
def test_option_assignments_equal_a_fresh_instance(name, data):
    cls = le.registry.get(name)
    options = declared_options(cls)
    if not options:
        pytest.skip(f"{name} declares no options")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    arrays = _inputs(data.draw, cls, dtype)
    made = outcome(lambda: cls(**_valid_options(data.draw, cls, arrays)))
    assume(made[0] == "ok")
    loss = made[1]
    outcome(lambda: loss.forward_backward(*arrays, wrt=tuple(cls.differentiable)))    # fill the caches
    for _ in range(data.draw(st.integers(1, 3))):
        option = data.draw(st.sampled_from(options))
        value = data.draw(st.sampled_from(_candidates(option, arrays, True)))
        old = getattr(loss, option.name)
        try:
            setattr(loss, option.name, value)
        except (ValueError, TypeError) as exc:
            assert option.name in str(exc)
            assert getattr(loss, option.name) is old
    current = {o.name: getattr(loss, o.name) for o in options}
    fresh = cls(**current)
    assert repr(fresh) == repr(loss)
    for wrt in (None, tuple(cls.differentiable)):
        assert_identical(outcome(lambda: loss.forward_backward(*arrays, wrt=wrt)),
                         outcome(lambda: fresh.forward_backward(*arrays, wrt=wrt)), f"wrt={wrt}")
