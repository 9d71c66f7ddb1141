"""lossengine.testing.parametrize_losses fails a loss the registry rejected instead of dropping it."""
import types
import warnings

import pytest

import lossengine as le
import lossengine.testing as let
from lossengine import registry

from test_plugins import BrokenCube, Cube


@pytest.fixture
def rejected_plugin():
    registry._reset()
    plugin = types.ModuleType("helpers_plugin")

    @le.hookimpl
    def lossengine_register_losses(register):
        register(Cube)
        register(BrokenCube)

    plugin.lossengine_register_losses = lossengine_register_losses
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        name = le.registry.register_plugin(plugin, name="lossengine-helpers_plugin")
    yield name
    registry._reset()


def _params_and_test(source):
    ran = []

    @let.parametrize_losses(source=source)
    def test_registered(loss_class):
        ran.append(loss_class)

    (mark,) = test_registered.pytestmark
    return mark.args[1], test_registered, ran


def test_rejected_loss_is_a_failing_param(rejected_plugin):
    # Matched loosely: case and -/_ do not matter.
    params, test, ran = _params_and_test("LossEngine_Helpers-Plugin")
    values = [p.values[0] for p in params]
    assert Cube in values
    rejected = [v for v in values if isinstance(v, let.RejectedLoss)]
    assert len(rejected) == 1
    test(loss_class=Cube)
    assert ran == [Cube]
    with pytest.raises(AssertionError, match="(?s)rejected.*gradient_vs_finite_differences"):
        test(loss_class=rejected[0])


def test_unknown_source_is_still_skipped(rejected_plugin):
    params, _, _ = _params_and_test("lossengine-not-installed")
    assert len(params) == 1 and params[0].marks[0].name == "skip"
