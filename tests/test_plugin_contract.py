"""A loss written strictly to the plugin contract passes the validator and registers: it subclasses
le.Loss, implements forward(*arrays) and backward(*arrays, grad_output=1.0, wrt=None) handling only
wrt=None or a tuple of names, and has no sample_inputs (the default draws from ``domains``)."""
import numpy as np
import pytest

import lossengine as le
from lossengine.domains import Interval


class ContractSquared(le.Loss):
    name = "contract_squared"
    arguments = ("input", "target")
    differentiable = ("input", "target")

    def forward(self, input, target):
        x, y = np.asarray(input), np.asarray(target)
        v = (x.astype(np.float64) - y) ** 2
        if self.reduction == "none":
            return v.astype(x.dtype)
        total = v.sum()
        return x.dtype.type(total / v.size if self.reduction == "mean" else total)

    def backward(self, input, target, grad_output=1.0, wrt=None):
        # Only the two forms the contract promises: None or a tuple of names.
        names = ("input",) if wrt is None else tuple(wrt)
        x, y = np.asarray(input), np.asarray(target)
        d = 2.0 * (x.astype(np.float64) - y) * np.asarray(grad_output, np.float64)
        if self.reduction == "mean":
            d = d / x.size
        grads = {"input": d.astype(x.dtype), "target": (-d).astype(x.dtype)}
        out = tuple(grads[n] for n in names)
        return out[0] if wrt is None else out


class ContractLogLoss(ContractSquared):
    """A bounded domain declared instead of a sample_inputs: -log(input) * target, input in (0, 1)."""
    name = "contract_logloss"
    differentiable = ("input",)
    domains = {"input": Interval(0, 1, open_low=True)}

    def forward(self, input, target):
        x, y = np.asarray(input), np.asarray(target)
        v = -np.log(x.astype(np.float64)) * y
        if self.reduction == "none":
            return v.astype(x.dtype)
        return x.dtype.type(v.sum() / v.size if self.reduction == "mean" else v.sum())

    def backward(self, input, target, grad_output=1.0, wrt=None):
        x, y = np.asarray(input), np.asarray(target)
        g = -y / x.astype(np.float64) * np.asarray(grad_output, np.float64)
        if self.reduction == "mean":
            g = g / x.size
        return tuple(g.astype(x.dtype) for _ in tuple(wrt))


@pytest.mark.parametrize("cls", [ContractSquared, ContractLogLoss])
def test_contract_loss_passes_and_registers(cls):
    report = le.check(cls)
    assert report.ok, str(report)
    try:
        le.registry.register(cls)
        assert le.registry.get(cls.name) is cls
    finally:
        le.registry.unregister(cls.name)


def test_author_receives_a_tuple_and_callers_get_every_public_form():
    seen = []

    class Spy(ContractSquared):
        def backward(self, input, target, grad_output=1.0, wrt=None):
            seen.append(wrt)
            return super().backward(input, target, grad_output=grad_output, wrt=wrt)

    x, y = np.arange(3.0), np.ones(3)
    loss = Spy(reduction="sum")
    one = loss.backward(x, y)
    named = loss.backward(x, y, wrt="target")
    both = loss.backward(x, y, wrt=("target", "input"))
    assert seen == [("input",), ("target",), ("target", "input")]
    assert isinstance(one, np.ndarray) and np.array_equal(one, 2 * (x - y))
    assert isinstance(named, np.ndarray) and np.array_equal(named, -2 * (x - y))
    assert isinstance(both, tuple) and np.array_equal(both[1], one)
    value, grad = loss.forward_backward(x, y, wrt="input")
    assert isinstance(grad, np.ndarray) and value == loss(x, y)
    with pytest.raises(ValueError, match="not an argument"):
        loss.backward(x, y, wrt="nope")


def test_builtin_families_are_not_wrapped():
    assert le.MSELoss.normalizes_wrt
    assert not getattr(le.MSELoss.backward, "_normalizes_wrt", False)
    assert getattr(ContractSquared.backward, "_normalizes_wrt", False)
