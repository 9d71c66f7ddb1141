"""Resources: no resident-memory growth over many successful and raising calls, for every
registered loss; a KeyboardInterrupt (SIGINT) arriving while kernels run returns control to Python,
and the calls after it are correct (bit-identical to the same calls before it)."""
import os
import re
import signal
import sys
import threading
import time

import numpy as np
import pytest

import lossengine as le
from lossengine.losses import FAMILIES
from reliability_cases import large_inputs

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")

NAMES = le.registry.names()
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def raising_call(loss, arrays):
    """A call on these arrays that raises a clean error as late as possible (after the gradient
    buffers exist, from the kernel's own checks where the loss has any), and its exception type."""
    attempts = []
    for k, a in enumerate(arrays):
        a = np.asarray(a)
        if a.dtype.kind in "iu" and a.size:      # a class index / length out of range: found by the kernel
            bad = [np.array(x, copy=True) for x in arrays]
            bad[k].flat[-1] = 10 ** 6
            attempts.append(bad)
        if a.dtype.kind == "f" and a.size:       # outside a bounded domain (BCE, GaussianNLL's var)
            bad = [np.array(x, copy=True) for x in arrays]
            bad[k].flat[-1] = -2.0
            attempts.append(bad)
    for bad in attempts:
        try:
            loss.forward_backward(*bad)
        except (ValueError, IndexError) as exc:
            return (lambda bad=bad: loss.forward_backward(*bad)), type(exc), str(exc)
    # Otherwise an upstream gradient of the wrong shape: refused before the kernel runs.
    wrong = np.ones(7)
    return (lambda: loss.forward_backward(*arrays, grad_output=wrong)), ValueError, "grad_output"


@pytest.mark.parametrize("name", NAMES)
def test_no_memory_growth_over_many_calls(name):
    cls = le.registry.get(name)
    arrays = large_inputs(cls, np.random.default_rng(0), np.float64, elements=100_000)
    loss = cls()
    bad_call, error, message = raising_call(loss, arrays)

    def rounds(n):
        for _ in range(n):
            loss.forward_backward(*arrays)
            with pytest.raises(error, match=re.escape(message)):    # the same refusal every time
                bad_call()

    rounds(20)      # warm-up: allocator pools, caches, lazily built kernels
    before = rss_bytes()
    rounds(60)
    growth = rss_bytes() - before
    # An input-sized buffer leaked per call would be >= 60 * 0.8 MB = 48 MB here; allocator noise
    # stays within a few MB.
    assert growth < 24 * 2 ** 20, f"{name}: RSS grew by {growth / 2 ** 20:.1f} MB over 120 calls"


def _first_of_each_family():
    return [family.LOSSES[0] for family in FAMILIES]


@pytest.mark.parametrize("cls", _first_of_each_family(), ids=lambda c: c.name)
@pytest.mark.parametrize("nthreads", [1, 2])
def test_keyboard_interrupt_during_calls_returns_and_later_calls_are_correct(cls, nthreads):
    arrays = large_inputs(cls, np.random.default_rng(1), np.float64, elements=4_000_000)
    loss = cls()
    with le.threads(nthreads):
        expected = loss.forward_backward(*arrays)
        start = time.perf_counter()
        loss.forward_backward(*arrays)
        one_call = time.perf_counter() - start
        sent = threading.Event()

        def interrupt():
            time.sleep(min(0.05, one_call / 2))
            sent.set()
            os.kill(os.getpid(), signal.SIGINT)

        timer = threading.Thread(target=interrupt)
        # Bounded by a count, not a clock: the signal is sent after at most half a call's time (or
        # 50 ms), far inside these calls.
        limit = 20 + int(1.0 / max(one_call, 1e-3))
        calls_after_signal = 0
        try:
            timer.start()
            for _ in range(limit):      # the signal lands while these calls run
                calls_after_signal += sent.is_set()
                loss.forward_backward(*arrays)
        except KeyboardInterrupt:
            pass
        else:
            pytest.fail(f"SIGINT never surfaced as KeyboardInterrupt in {limit} calls")
        finally:
            timer.join()
        assert sent.is_set()
        # Control came back within the call the signal met (a kernel finishes its pass, then Python
        # raises): at most the call running when the flag was set and the one running at the kill.
        assert calls_after_signal <= 2, f"{calls_after_signal} calls started after the signal"
        after = loss.forward_backward(*arrays)
    np.testing.assert_array_equal(np.asarray(after[0]), np.asarray(expected[0]))
    np.testing.assert_array_equal(after[1], expected[1])
