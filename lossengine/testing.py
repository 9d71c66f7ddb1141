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

from typing import Any, Iterable

from . import registry
from .validation import CheckReport, check

__all__ = ["assert_loss_valid", "loss_params", "parametrize_losses", "LossCheckFailed"]


class LossCheckFailed(AssertionError):
    """The validator rejected a loss; ``.report`` holds the CheckReport."""

    def __init__(self, report: CheckReport) -> None:
        self.report = report
        failed = sorted({f.check for f in report.failures})
        super().__init__(f"{report.loss} failed the lossengine validator ({', '.join(failed)}):\n{report}")


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
    those from ``source`` ('lossengine' for built-ins, else a distribution name) when given."""
    import pytest

    chosen = registry.names() if names is None else list(names)
    if source is not None:
        chosen = [n for n in chosen if registry.source(n) == source]
    return [pytest.param(registry.get(n), id=n) for n in chosen]


def parametrize_losses(names: Iterable[str] | None = None, *, source: str | None = None,
                       argname: str = "loss_class"):
    """``@pytest.mark.parametrize(argname, loss_params(...))``. With no match, the test is skipped
    (an uninstalled plugin), not silently passed."""
    import pytest

    params = loss_params(names, source=source)
    if not params:
        params = [pytest.param(None, marks=pytest.mark.skip(reason=f"no registered loss from {source or names}"))]
    return pytest.mark.parametrize(argname, params)
