"""Every registered loss, built-in or plugin, passes the validator: no per-loss test code needed."""
import pytest

import lossengine as le
import lossengine.testing as let


@let.parametrize_losses()
def test_registered_loss_passes_validator(loss_class):
    # The same helper plugin authors use: fails with the report, or when no check ran.
    let.assert_loss_valid(loss_class)


def test_builtins_come_from_the_builtin_plugin():
    builtin = {n for n in le.registry.names() if le.registry.source(n) == "lossengine"}
    assert {"mse_loss", "l1_loss", "binary_cross_entropy_with_logits", "gaussian_nll_loss"} <= builtin
    assert le.registry.get("mse_loss") is le.MSELoss


def test_unknown_name_is_a_key_error_listing_the_names():
    with pytest.raises(KeyError, match="mse_loss"):
        le.registry.get("no_such_loss")
