"""What a rejection says: the root cause first, plain numbers, the got/expected ratio, the reduction
that is wrong, the first few failures and a count; and sample inputs drawn once per configuration."""
import numpy as np
import pytest

import lossengine as le
from lossengine import validation
from lossengine._threads import PARALLEL_MIN_ELEMENTS, get_num_threads
from lossengine.losses.classification import ClassificationLoss

from test_plugin_contract import ContractSquared


def test_an_instance_is_told_to_pass_the_class():
    report = le.check(le.MSELoss())
    assert not report.ok
    assert "pass the class, not an instance" in str(report)
    assert len(report.failures) == 1


def test_a_missing_method_is_one_failure_with_its_fix():
    class NoBackward(le.Loss):
        name = "no_backward"

        def forward(self, input, target):
            return np.sum(input)

    report = le.check(NoBackward)
    assert [f.check for f in report.failures] == ["structure"]
    assert "define backward(self, *arrays, grad_output=1.0, wrt=None)" in str(report)


def test_failing_sample_inputs_stop_their_configuration():
    class BadSamples(ContractSquared):
        @classmethod
        def sample_inputs(cls, rng, dtype):
            raise RuntimeError("no samples today")

    report = le.check(BadSamples)
    assert {f.check for f in report.failures} == {"sample_inputs"}
    assert len(report.failures) == len(BadSamples.reductions)


def test_numbers_are_plain_with_the_ratio_at_the_worst_element():
    class HalfGradient(ContractSquared):
        def backward(self, input, target, grad_output=1.0, wrt=None):
            return tuple(g / 2 for g in super().backward(input, target, grad_output=grad_output, wrt=wrt))

    report = le.check(HalfGradient)
    text = str(report)
    assert "np.float64(" not in text and "np.float32(" not in text
    assert "got/expected = 0.5x" in text


def test_report_shows_the_first_failures_and_counts_the_rest(monkeypatch):
    monkeypatch.setattr(validation, "SHOWN_FAILURES", 3)
    class AllWrong(ContractSquared):
        def backward(self, input, target, grad_output=1.0, wrt=None):
            return tuple(g * 20 for g in super().backward(input, target, grad_output=grad_output, wrt=wrt))

    report = le.check(AllWrong)
    assert len(report.failures) > validation.SHOWN_FAILURES
    text = str(report)
    assert f"... and {len(report.failures) - validation.SHOWN_FAILURES} more failure(s)" in text
    assert text.count("\n  [") == validation.SHOWN_FAILURES


def test_a_mean_failure_is_labelled_mean():
    class MeanOff(ContractSquared):
        def forward(self, input, target):
            value = super().forward(input, target)
            return value * 1.5 if self.reduction == "mean" else value

    report = le.check(MeanOff)
    reductions = [f for f in report.failures if f.check == "reductions_consistent"]
    assert reductions and all("reduction='mean'" in f.message for f in reductions)
    assert "1.5x" in str(reductions[0])


def test_batchmean_is_in_the_reduction_check():
    class BatchmeanIsMean(le.KLDivLoss):
        name = "kl_div_bug"

        def _denominator(self, shape):
            return int(np.prod(shape)) if self.reduction == "batchmean" else super()._denominator(shape)

    report = le.check(BatchmeanIsMean)
    assert any(f.check == "reductions_consistent" and "reduction='batchmean'" in f.message
               for f in report.failures), str(report)


def test_report_round_trips_through_json():
    import json

    report = le.check(le.MSELoss())
    again = validation.CheckReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report


def test_sample_inputs_drawn_once_per_configuration():
    calls = []

    class Counted(ContractSquared):
        @classmethod
        def sample_inputs(cls, rng, dtype):
            calls.append(dtype)
            return rng.standard_normal((3, 5)).astype(dtype), rng.standard_normal((3, 5)).astype(dtype)

    assert le.check(Counted).ok
    # 2 dtypes x FINITE_SEEDS draws, and the large inputs' LARGE_FRESH_DRAWS once per dtype (its
    # sample inputs share the batch axis, so they are tiled past the parallel cutoff), not per check.
    assert len(calls) <= 2 * (validation.FINITE_SEEDS + validation.LARGE_FRESH_DRAWS)


@pytest.mark.parametrize("cls", [c for c in vars(le).values()
                                 if isinstance(c, type) and issubclass(c, ClassificationLoss)
                                 and getattr(c, "name", "")], ids=lambda c: c.__name__)
def test_large_inputs_reach_the_classification_parallel_cutoff(cls):
    # pyx/classification.pyx runs rows in parallel when rows x classes >= PARALLEL_MIN_ELEMENTS.
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arrays = validation._large_inputs(validation._Case(cls, {}, "mean", 0), np.float64)
        assert arrays is not None
        assert arrays[0].size >= PARALLEL_MIN_ELEMENTS
        cls(reduction="mean")(*arrays)  # valid inputs


def test_thread_dependent_classification_loss_is_caught():
    class Bug(le.CrossEntropyLoss):
        name = "cross_entropy_bug"

        def _compute(self, arrays, want_value, wrt, grad_output):
            value, grads = super()._compute(arrays, want_value, wrt, grad_output)
            if value is not None and np.size(arrays[0]) >= PARALLEL_MIN_ELEMENTS:
                value = value * (1 + 1e-15 * get_num_threads())
            return value, grads

    report = le.check(Bug)
    assert {f.check for f in report.failures} == {"deterministic_and_thread_invariant"}, str(report)
    assert "(large inputs)" in str(report)
