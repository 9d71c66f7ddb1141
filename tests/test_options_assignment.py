"""Options assigned after construction: an assigned option is parsed as the constructor
parses it and rebuilds every cache derived from the options. Over every built-in loss, every
declared option: each example (and each check_options configuration) assigned to a loss that has
already run gives a fresh instance's numbers in both dtypes; an invalid value is refused, naming the
option, and the loss keeps its old value."""
import re
import warnings

import numpy as np
import pytest

import lossengine as le
from lossengine.declaration import declared_options
from lossengine.losses import BUILTIN_LOSSES

DTYPES = (np.float64, np.float32)


def _outcome(loss, arrays):
    """forward_backward's result, or the error it raises (compared by type and message)."""
    wrt = type(loss).differentiable
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value, grads = loss.forward_backward(*arrays, wrt=wrt)
    except (ValueError, TypeError, IndexError) as exc:
        return type(exc), str(exc)
    return np.asarray(value), tuple(np.asarray(g) for g in grads)


def _assert_same(a, b):
    assert type(a[0]) is type(b[0]), (a, b)
    if isinstance(a[0], type):
        assert a == b
        return
    np.testing.assert_array_equal(a[0], b[0])
    for g, h in zip(a[1], b[1]):
        np.testing.assert_array_equal(g, h)


def _configurations(cls) -> list[dict]:
    """The defaults, each declared example alone, each check_options entry, and each entry whose
    arrays are replaced by different ones (a weight changed for another weight)."""
    configs = [{}]
    configs += [{o.name: e} for o in declared_options(cls) for e in o.examples]
    for entry in getattr(cls, "check_options", ()):
        configs.append(dict(entry))
        if any(isinstance(v, np.ndarray) for v in entry.values()):
            configs.append({k: (v[::-1] * 2.0 if isinstance(v, np.ndarray) else v) for k, v in entry.items()})
    return configs


def _transitions(cls):
    configs = _configurations(cls)
    # Each configuration into the next (and the last back to the defaults): every example is assigned
    # onto a loss configured otherwise, including a weight onto another weight.
    return [(configs[k], configs[(k + 1) % len(configs)]) for k in range(len(configs))]


CASES = [(cls, before, after) for cls in BUILTIN_LOSSES for before, after in _transitions(cls)]


@pytest.mark.parametrize("cls, before, after", CASES,
                         ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_reassigned_options_give_a_fresh_instances_numbers(cls, before, after):
    defaults = {o.name: o.default for o in declared_options(cls)}
    inputs = {dtype: cls.sample_inputs(np.random.default_rng(11), dtype) for dtype in DTYPES}
    loss = cls(**before)
    for dtype in DTYPES:        # fill every per-dtype cache first
        _outcome(loss, inputs[dtype])
    for name in set(before) | set(after):
        setattr(loss, name, after.get(name, defaults[name]))
    fresh = cls(**after)
    assert repr(loss) == repr(fresh)
    for dtype in DTYPES:
        _assert_same(_outcome(loss, inputs[dtype]), _outcome(fresh, inputs[dtype]))


def _invalid_values(option) -> list:
    """Values the option's parser must refuse: a wrong type (an array of several elements for a
    flag, which has no truth value), and NaN for numbers."""
    values = [np.array([1.0, 2.0]) if option.kind == "flag" else object()]
    if option.kind in ("real", "integer"):
        values.append(float("nan"))
    return values


INVALID = [(cls, option.name, value) for cls in BUILTIN_LOSSES for option in declared_options(cls)
           for value in _invalid_values(option)]


@pytest.mark.parametrize("cls, name, value", INVALID,
                         ids=[f"{c.__name__}.{n}-{type(v).__name__}" for c, n, v in INVALID])
def test_invalid_assignment_is_refused_and_the_old_value_kept(cls, name, value):
    loss = cls()
    arrays = cls.sample_inputs(np.random.default_rng(12), np.float64)
    expected = _outcome(loss, arrays)
    old = getattr(loss, name)
    with pytest.raises((ValueError, TypeError), match=re.escape(name)):
        setattr(loss, name, value)
    assert getattr(loss, name) is old
    _assert_same(_outcome(loss, arrays), expected)


@pytest.mark.parametrize("assignment, message", [
    (("HuberLoss", "delta", -1.0), "delta must be > 0"),
    (("MSELoss", "reduction", "sun"), "reduction must be one of"),
    (("TripletMarginLoss", "p", 0), "p must be > 0"),
    (("PinballLoss", "quantile", 2), "quantile must be < 1"),
    (("CrossEntropyLoss", "label_smoothing", 5), "label_smoothing must be between 0.0 and 1.0"),
    (("HingeEmbeddingLoss", "margin", 10 ** 400), "margin must fit in a double"),
    (("CTCLoss", "blank", "0"), "blank must be an integer"),
    (("HalfTweedieLoss", "power", 0.5), "power must be <= 0 or >= 1"),
])
def test_the_issues_assignments_are_refused(assignment, message):
    # Accepted before: a negative Huber loss, 'sun' silently meaning 'mean', p=0, quantile=2,
    # label_smoothing=5; 10**400 failed at call time with OverflowError.
    cls_name, name, value = assignment
    loss = getattr(le, cls_name)()
    with pytest.raises((ValueError, TypeError), match=message):
        setattr(loss, name, value)


@pytest.mark.parametrize("cls_name", ["CrossEntropyLoss", "NLLLoss", "MultiMarginLoss", "SoftmaxFocalLoss",
                                      "Poly1CrossEntropyLoss"])
def test_reassigned_class_weight_reaches_both_dtypes(cls_name):
    # The issue's case: float64 calls kept the old weights (1.2395 against 2.0395), float32 used the new.
    x = np.random.default_rng(4).standard_normal((5, 3))
    t = np.array([0, 1, 2, 1, 1])
    loss = getattr(le, cls_name)(weight=np.ones(3))
    loss(x, t), loss(x.astype(np.float32), t)
    loss.weight = [1.0, 9.0, 1.0]
    fresh = getattr(le, cls_name)(weight=np.array([1.0, 9.0, 1.0]))
    assert loss(x, t) == fresh(x, t)
    assert loss(x.astype(np.float32), t) == fresh(x.astype(np.float32), t)
    np.testing.assert_array_equal(loss.backward(x, t), fresh.backward(x, t))
