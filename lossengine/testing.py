"""The validator as pytest helpers, for plugin authors' test suites (and lossengine's own).

    import lossengine.testing as let

    def test_my_loss_is_valid():
        let.assert_loss_valid(MyLoss)                      # AssertionError carrying the report

    @let.parametrize_losses(source="lossengine-myplugin")  # one test per registered loss
    def test_registered(loss_class):
        let.assert_loss_valid(loss_class)

pytest is imported only by the parametrizing helpers: lossengine itself never needs it.
"""
from __future__ import annotations

import functools
from typing import Any, Iterable

from . import registry
from .validation import CheckReport, check

__all__ = ["assert_loss_valid", "loss_params", "parametrize_losses", "rejected_params", "RejectedLoss",
           "LossCheckFailed", "residual_pairs"]


class LossCheckFailed(AssertionError):
    """The validator rejected a loss; ``.report`` holds the CheckReport."""

    def __init__(self, report: CheckReport) -> None:
        self.report = report
        failed = sorted({f.check for f in report.failures})
        super().__init__(f"{report.loss} failed the lossengine validator ({', '.join(failed)}):\n{report}")


def residual_pairs(rng, dtype, shape: tuple = (4, 5)):
    """``(input, target)`` for a regression loss's ``sample_inputs``: residuals target - input at four
    scales (1e-9, 0.3, 3 and 40 times a standard normal: far inside and far outside a loss's scale
    parameter), and ties (the first two entries of the first row). ``rng`` a numpy Generator."""
    import numpy as np

    x = 2.0 * rng.standard_normal(shape)
    y = x + rng.choice(np.array([1e-9, 0.3, 3.0, 40.0]), shape) * rng.standard_normal(shape)
    y[(0,) * (len(shape) - 1) + (slice(0, 2),)] = x[(0,) * (len(shape) - 1) + (slice(0, 2),)]
    return x.astype(dtype), y.astype(dtype)


def assert_loss_valid(loss: Any, *, seed: int = 0) -> CheckReport:
    """Run every validator check on ``loss`` (a Loss class or a registry name); raise
    LossCheckFailed (an AssertionError) listing the failures, else return the report."""
    loss_class = registry.get(loss) if isinstance(loss, str) else loss
    report = check(loss_class, seed=seed)
    if not report.ok:
        raise LossCheckFailed(report)
    if not report.checks_run:
        raise AssertionError(f"the validator ran no checks on {report.loss}")
    return report


def loss_params(names: Iterable[str] | None = None, *, source: str | None = None) -> list:
    """``pytest.param(loss_class, id=name)`` for registered losses: ``names`` (default: all), only
    those from ``source`` ('lossengine' for built-ins, else a distribution name; case and -/_ ignored)
    when given."""
    import pytest

    chosen = registry.names() if names is None else list(names)
    if source is not None:
        chosen = [n for n in chosen if _normalized(registry.source(n)) == _normalized(source)]
    return [pytest.param(registry.get(n), id=n) for n in chosen]


class RejectedLoss:
    """The parameter standing for a loss the registry refused: a test given it fails with the reason."""

    def __init__(self, plugin: str, reason: str) -> None:
        self.plugin, self.reason = plugin, reason

    def __repr__(self) -> str:
        return f"RejectedLoss({self.plugin!r})"


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def rejected_params(source: str) -> list:
    """One ``pytest.param(RejectedLoss)`` per registry failure of ``source``: failures recorded under
    that plugin name or naming that distribution (loosely: case and -/_ ignored)."""
    import pytest

    wanted = _normalized(source)
    params = []
    for plugin, reasons in registry.failures().items():
        if _normalized(plugin) == wanted or wanted in _normalized(reasons):
            params.append(pytest.param(RejectedLoss(plugin, reasons), id=f"rejected:{plugin}"))
    return params


def parametrize_losses(names: Iterable[str] | None = None, *, source: str | None = None,
                       argname: str = "loss_class"):
    """``@pytest.mark.parametrize(argname, loss_params(...))``. A loss from ``source`` that the registry
    rejected is a parameter too, whose test fails with the registry's report (a broken plugin must
    not pass by vanishing). With no match at all, the test is skipped (an uninstalled plugin)."""
    import pytest

    params = loss_params(names, source=source)
    if source is not None:
        params += rejected_params(source)
    if not params:
        params = [pytest.param(None, marks=pytest.mark.skip(reason=f"no registered loss from {source or names}"))]
    mark = pytest.mark.parametrize(argname, params)

    def decorate(test):
        @functools.wraps(test)
        def run(*args, **kwargs):
            given = kwargs.get(argname)
            if isinstance(given, RejectedLoss):
                raise AssertionError(f"lossengine registry rejected plugin {given.plugin!r}:\n{given.reason}")
            return test(*args, **kwargs)
        return mark(run)
    return decorate
