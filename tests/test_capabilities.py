"""#29: what the validator and the integrations need from a loss class is declared on it (with
defaults on lossengine.Loss), never inspected from its family; ``reduction`` is one small object."""
import ast
from pathlib import Path

import numpy as np
import pytest

import lossengine as le
from lossengine import _check_support, validation
from lossengine._reductions import REDUCTIONS, reduction_of

PACKAGE = Path(le.__file__).resolve().parent
VALIDATOR_MODULES = ("validation.py", "_check_support.py", "_checks_numeric.py", "_checks_contract.py",
                     "_verdict_store.py")


@pytest.mark.parametrize("module", VALIDATOR_MODULES)
def test_the_validator_imports_no_loss_family(module):
    tree = ast.parse((PACKAGE / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
            imported.update(f"{node.module}.{a.name}" for a in node.names if node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    families = [m for m in imported if "losses" in m or "extending" in m]
    assert families == [], f"{module} imports {families}"


def test_capability_defaults_live_on_loss_and_the_families_declare_theirs():
    assert le.Loss.sample_layout is None and le.Loss.class_index_targets is False
    for family in (le.ElementwiseLoss, le.ClassificationLoss, le.NumpyElementwiseLoss,
                   le.CompiledElementwiseLoss, le.CompiledRowLoss):
        assert family.sample_layout == "batch-rows", family
    for cls in (le.EmbeddingLoss, le.CTCLoss, le.LinearCrossEntropyLoss):
        assert cls.sample_layout is None, cls
    assert le.NLLLoss.class_index_targets and le.CrossEntropyLoss.class_index_targets
    assert not le.MultiMarginLoss.class_index_targets and not le.MSELoss.class_index_targets
    # CompiledRowLoss's parent is public now (it was a private class of the classification module).
    assert le.CompiledRowLoss.__mro__[1] is le.IndexTargetLoss
    assert le.CompiledRowLoss.class_index_targets


class _Ragged(le.Loss):
    """A loss of independent rows whose sample draws differ in batch size: only a declared
    sample_layout lets the validator join them into large inputs."""
    name = "test_capabilities_ragged"
    differentiable = ("input",)

    @classmethod
    def sample_inputs(cls, rng, dtype):
        n = int(rng.integers(2, 6))
        return rng.standard_normal((n, 3)).astype(dtype), rng.standard_normal((n, 3)).astype(dtype)

    def forward(self, input, target):
        d = (np.asarray(input) - np.asarray(target)) ** 2
        return d if self.reduction == "none" else d.dtype.type(d.sum() / (d.size if self.reduction == "mean" else 1))

    def backward(self, input, target, grad_output=1.0, wrt=None):
        g = 2 * (np.asarray(input) - np.asarray(target)) * np.asarray(grad_output)
        return tuple(g / (g.size if self.reduction == "mean" else 1) * (1 if n == "input" else -1) for n in wrt)


def test_sample_layout_is_what_lets_ragged_draws_be_joined():
    def large(cls):
        return _check_support.large_inputs(_check_support.Case(cls, {}, "mean", 0), np.float64)

    assert large(_Ragged) is None              # another shape, nothing declared: no guess
    declared = type("RaggedRows", (_Ragged,), {"sample_layout": "batch-rows"})
    arrays = large(declared)
    assert arrays is not None and arrays[0].shape[0] == arrays[1].shape[0]
    assert arrays[0].size > le._threads.PARALLEL_MIN_ELEMENTS


def test_a_distance_is_checked_as_the_loss_it_names():
    assert issubclass(le.EuclideanDistance.as_loss(), le.Loss)
    assert validation._as_checked(le.EuclideanDistance()).distance_class is le.EuclideanDistance
    assert validation._as_checked(le.MSELoss) is le.MSELoss

    class StandsFor:
        @staticmethod
        def as_loss():
            return le.MSELoss

    assert validation._as_checked(StandsFor()) is le.MSELoss


@pytest.mark.parametrize("name, positions, batch, declared, expected", [
    ("none", 12, 3, None, 1), ("sum", 12, 3, 5.0, 1), ("mean", 12, 3, None, 12), ("mean", 12, 3, 5.0, 5.0),
    ("batchmean", 12, 3, None, 3)])
def test_a_reduction_owns_its_denominator_and_grad_output_scale(name, positions, batch, declared, expected):
    mode = reduction_of(name)
    d = mode.denominator(positions, batch=batch, declared=declared)
    assert d == expected
    assert mode.grad_scale(0.5, d) == 0.5 / expected
    assert mode.value(6.0, d) == (6.0 if mode.divides is None else 6.0 / expected)
    assert mode.reduces == (name != "none")


def test_an_empty_mean_is_nan_and_a_plugins_own_reduction_divides_by_nothing():
    assert np.isnan(reduction_of("mean").value(0.0, 0)) and reduction_of("mean").grad_scale(2.0, 0) == 2.0
    assert reduction_of("sum").value(0.0, 0) == 0.0
    own = reduction_of("plugin_specific")
    assert own.divides is None and own.denominator(7) == 1 and own.value(3.0, 1) == 3.0
    assert set(REDUCTIONS) == {"none", "sum", "mean", "batchmean"}


def test_kldiv_batchmean_divides_by_the_leading_axis():
    x = np.log(np.full((4, 5), 0.2))
    t = np.full((4, 5), 0.2) + np.linspace(0, 0.01, 5)
    per = le.KLDivLoss(reduction="none")(x, t)
    assert le.KLDivLoss(reduction="batchmean")(x, t) == pytest.approx(per.sum() / 4, rel=1e-12)
    g = le.KLDivLoss(reduction="batchmean").backward(x, t)
    assert np.allclose(g, le.KLDivLoss(reduction="none").backward(x, t) / 4, rtol=1e-12)
