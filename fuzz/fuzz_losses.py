"""Coverage-guided fuzzing (atheris) of every registered loss: raw bytes -> a loss, its options, its
arrays (shape, dtype, values, layout), grad_output, wrt and a method -> a kernel call.

What counts as a finding: anything but a result or a clean ValueError/TypeError/IndexError (an
OverflowError, a SystemError, an assertion in the harness), a modified input, or a crash of the
process (a segfault in a kernel). Cases of a defect issue #15 already lists are skipped through
tests/reliability_cases.py's KNOWN_DEFECTS, the same list the property suite uses.

Coverage: atheris instruments the Python side (lossengine's normalization, option parsing, the
family plans), which is where every index and shape is validated before a kernel runs. The Cython
kernels are compiled by gcc without libFuzzer's instrumentation, so they run un-instrumented: they
are exercised (a crash still ends the run with the input saved), but their branches do not guide
the search. For that, build with clang and -fsanitize=fuzzer-no-link (not done here).

    python fuzz/fuzz_losses.py -runs=20000 /tmp/new-corpus fuzz/corpus   # bounded; new inputs -> /tmp
    python fuzz/fuzz_losses.py -max_total_time=600 /tmp/new-corpus fuzz/corpus
    python fuzz/fuzz_losses.py crash-<hash>                                 # replay one input

libFuzzer writes new inputs into the FIRST corpus directory, so give it a scratch one first and
the committed corpus (read only) second. tests/test_fuzz.py runs a bounded session.
"""
from __future__ import annotations

import os
import sys

import atheris

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

with atheris.instrument_imports(include=["lossengine"]):
    import numpy as np

    import lossengine as le
    from lossengine.declaration import declared_options

from reliability_cases import (  # noqa: E402
    CLEAN_ERRORS, GRAD_OUTPUTS, HOSTILE_GRAD_OUTPUTS, HOSTILE_INDICES, LAYOUTS, SPECIAL_FLOATS, Case, call,
    domain_inputs, known_defect, layout, option_candidates, uses_default_sampler)

NAMES = le.registry.names()
METHODS = ("forward", "backward", "forward_backward")


def pick(fdp: atheris.FuzzedDataProvider, seq):
    return seq[fdp.ConsumeIntInRange(0, len(seq) - 1)]


def build_case(data: bytes) -> tuple[Case, str]:
    fdp = atheris.FuzzedDataProvider(data)
    cls = le.registry.get(pick(fdp, NAMES))
    dtype = np.dtype(pick(fdp, (np.float64, np.float32)))
    rng = np.random.default_rng(fdp.ConsumeIntInRange(0, 2 ** 32 - 1))
    if uses_default_sampler(cls) and fdp.ConsumeBool():
        shape = tuple(fdp.ConsumeIntInRange(0, 5) for _ in range(fdp.ConsumeIntInRange(0, 3)))
        arrays = domain_inputs(cls, rng, dtype, shape)
    else:
        arrays = [np.array(a) for a in cls.sample_inputs(rng, dtype)]
    first = arrays[0]
    classes = first.shape[1] if first.ndim >= 2 else (first.shape[0] if first.ndim else 1)
    options = {}
    for option in declared_options(cls):
        if fdp.ConsumeBool():
            options[option.name] = pick(fdp, option_candidates(option, True, classes, first.shape))
    # Raw values from the bytes, spliced in: any float (NaN payloads, denormals), any int64.
    for a in arrays:
        if not a.size:
            continue
        for _ in range(fdp.ConsumeIntInRange(0, 3)):
            k = fdp.ConsumeIntInRange(0, a.size - 1)
            if a.dtype.kind == "f":
                with np.errstate(over="ignore"):
                    a.flat[k] = fdp.ConsumeFloat() if fdp.ConsumeBool() else pick(fdp, SPECIAL_FLOATS)
            elif fdp.ConsumeBool():
                a.flat[k] = pick(fdp, HOSTILE_INDICES + (classes, classes + 1))
            else:
                a.flat[k] = fdp.ConsumeIntInRange(-2 ** 63, 2 ** 63 - 1)
    how = pick(fdp, ("contiguous",) + LAYOUTS)
    if how != "contiguous":
        arrays = [layout(a, how) for a in arrays]
    grad_output = pick(fdp, GRAD_OUTPUTS + HOSTILE_GRAD_OUTPUTS)
    wrt = pick(fdp, [None, *cls.differentiable, tuple(cls.differentiable), "bogus"])
    return Case(cls, options, arrays, grad_output, wrt), pick(fdp, METHODS)


def one_input(data: bytes) -> None:
    case, method = build_case(data)
    if known_defect(case):
        return
    before = [a.copy() for a in case.arrays]
    try:
        call(case, method=method)
    except CLEAN_ERRORS:
        pass
    for a, b in zip(case.arrays, before):
        if not np.array_equal(a, b, equal_nan=True):
            raise AssertionError(f"{method} modified an input: {case!r}")


def main() -> None:
    import warnings
    warnings.simplefilter("ignore")
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
