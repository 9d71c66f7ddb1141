"""Regression tests for what the property suite (tests/test_properties.py), the fuzz harness (fuzz/)
and the sanitizer build found, each as the shrunk, explicit case. A case of a defect issue #15
lists and the lead is fixing on main is a strict xfail naming the defect, paired with the entry of
the same name in test_properties.KNOWN_DEFECTS: when the fix lands the xfail turns into a failure
(XPASS, strict), and both the mark and the KNOWN_DEFECTS entry are removed."""
import numpy as np
import pytest

import lossengine as le

BUILTIN_NAMES = [cls.name for cls in le.losses.BUILTIN_LOSSES]


@pytest.mark.xfail(strict=True, raises=OverflowError,
                   reason="issue #15 defect: grad_output=10**400 (an int beyond a double) raises OverflowError "
                          "(KNOWN_DEFECTS['grad_output_huge_int'])")
@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_grad_output_huge_int_is_value_error(name):
    # Shrunk by hypothesis from test_result_or_clean_error_and_inputs_unmodified, for every loss.
    cls = le.registry.get(name)
    arrays = cls.sample_inputs(np.random.default_rng(0), np.float64)
    with pytest.raises(ValueError, match="grad_output"):
        cls().backward(*arrays, grad_output=10 ** 400)
