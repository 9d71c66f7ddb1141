"""The JAX wrapper's cost: jit(value_and_grad) through lossengine.integrations.jax.wrap against the
same loss written in JAX (optax), interleaved medians in one run.

    python benchmarks/bench_jax_wrap.py            # prints the table the README quotes
    pytest benchmarks/bench_jax_wrap.py --benchmark-enable
"""
import numpy as np
import pytest

jax = pytest.importorskip("jax") if __name__ != "__main__" else __import__("jax")
optax = pytest.importorskip("optax") if __name__ != "__main__" else __import__("optax")
import jax.numpy as jnp  # noqa: E402

import lossengine as le  # noqa: E402
from lossengine.bench import interleaved_medians  # noqa: E402
from lossengine.integrations.jax import wrap  # noqa: E402

SIZES = (1_000, 1_000_000)


def _functions(n):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(n), jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, n), jnp.float32)
    wrapped = jax.jit(jax.value_and_grad(wrap(le.BCEWithLogitsLoss())))
    native = jax.jit(jax.value_and_grad(lambda a, b: optax.sigmoid_binary_cross_entropy(a, b).mean()))
    run_wrapped = lambda: jax.block_until_ready(wrapped(x, y))      # noqa: E731
    run_native = lambda: jax.block_until_ready(native(x, y))        # noqa: E731
    loss, x_host, y_host = le.BCEWithLogitsLoss(), np.asarray(x), np.asarray(y)
    run_direct = lambda: loss.forward_backward(x_host, y_host)     # noqa: E731
    run_wrapped(), run_native()                                      # compile
    return {"lossengine via wrap": run_wrapped, "pure JAX (optax)": run_native,
            "lossengine on NumPy": run_direct}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("which", ["lossengine via wrap", "pure JAX (optax)", "lossengine on NumPy"])
def test_jax_wrap(benchmark, n, which):
    benchmark(_functions(n)[which])


if __name__ == "__main__":
    # The wrapper's own cost per call is "via wrap" minus "on NumPy" (the same kernel pass, called
    # directly): the callback's host round trip and the argument/result handling.
    print("| n | lossengine via wrap | pure JAX (optax) | lossengine on NumPy | wrap overhead per call "
          "| wrap / pure JAX |\n|---|---|---|---|---|---|")
    for n in SIZES:
        med = interleaved_medians(_functions(n), repeat=50)
        a, b, c = med["lossengine via wrap"], med["pure JAX (optax)"], med["lossengine on NumPy"]
        print(f"| {n:.0e} | {a * 1e6:.1f} µs | {b * 1e6:.1f} µs | {c * 1e6:.1f} µs | {(a - c) * 1e6:.1f} µs "
              f"| {a / b:.2f}x |")
