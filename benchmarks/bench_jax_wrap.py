"""The JAX wrapper's cost: jit(value_and_grad) through lossengine.integrations.jax.wrap against the
same loss written in JAX (optax), float32, interleaved medians in one run. Both of wrap's routes are
timed: the XLA FFI handler (when lossengine_jaxffi is installed) and the pure_callback fallback.

    python benchmarks/bench_jax_wrap.py            # prints the table the README quotes
    python benchmarks/bench_jax_wrap.py --threads 1 --cases "BCEWithLogits 1e3"
    pytest benchmarks/bench_jax_wrap.py --benchmark-enable

"wrap overhead" is the time through wrap minus the same kernel pass called directly on NumPy arrays
(``forward_backward``): what the route itself costs per call (dispatch, the custom call, argument and
result handling).
"""
import numpy as np
import pytest

jax = pytest.importorskip("jax") if __name__ != "__main__" else __import__("jax")
optax = pytest.importorskip("optax") if __name__ != "__main__" else __import__("optax")
import jax.numpy as jnp  # noqa: E402

import lossengine as le  # noqa: E402
from lossengine.bench import interleaved_medians  # noqa: E402
from lossengine.integrations import jax as lejax  # noqa: E402

CASES = {
    "BCEWithLogits 1e3": (le.BCEWithLogitsLoss, (1_000,)),
    "BCEWithLogits 1e5": (le.BCEWithLogitsLoss, (100_000,)),
    "BCEWithLogits 1e6": (le.BCEWithLogitsLoss, (1_000_000,)),
    "CrossEntropy 4096x1000": (le.CrossEntropyLoss, (4096, 1000)),
}


def _inputs(loss_class, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    if loss_class is le.CrossEntropyLoss:
        return x, rng.integers(0, shape[1], shape[0])
    return x, rng.integers(0, 2, shape).astype(np.float32)


def _native(loss_class):
    if loss_class is le.CrossEntropyLoss:
        return lambda a, b: optax.softmax_cross_entropy_with_integer_labels(a, b).mean()
    return lambda a, b: optax.sigmoid_binary_cross_entropy(a, b).mean()


def _routes():
    """wrap's routes available here: the one wrap uses, and the fallback when that is the FFI."""
    routes = {f"wrap ({lejax.backend()})": lejax.wrap}
    if lejax.backend() == "ffi":
        routes["wrap (pure_callback)"] = lambda loss: lejax._Wrapped(loss, lejax._Callback()).function()
    return routes


def _functions(case):
    loss_class, shape = CASES[case]
    x_host, y_host = _inputs(loss_class, shape)
    x, y = jnp.asarray(x_host), jnp.asarray(y_host)
    engines = {}
    for name, make in _routes().items():
        f = jax.jit(jax.value_and_grad(make(loss_class())))
        engines[name] = (lambda f: lambda: jax.block_until_ready(f(x, y)))(f)
    native = jax.jit(jax.value_and_grad(_native(loss_class)))
    engines["optax"] = lambda: jax.block_until_ready(native(x, y))
    loss = loss_class()
    engines["lossengine on NumPy"] = lambda: loss.forward_backward(x_host, y_host)
    for run in engines.values():
        run()                                                        # compile
    return engines


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("which", ["wrap", "optax", "lossengine on NumPy"])
def test_jax_wrap(benchmark, case, which):
    engines = _functions(case)
    benchmark(engines[next(k for k in engines if k.startswith(which))])


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="lossengine's kernel threads (default: its own choice)")
    parser.add_argument("--cases", nargs="*", choices=list(CASES), default=list(CASES))
    args = parser.parse_args()
    if args.threads:
        le.set_num_threads(args.threads)
    print(f"jax {jax.__version__}, lossengine threads {le.get_num_threads()}")
    routes = list(_routes())
    print("| case | " + " | ".join(routes) + " | optax | lossengine on NumPy | "
          + " | ".join(f"{r} overhead" for r in routes) + " | " + " | ".join(f"{r} / optax" for r in routes) + " |")
    print("|---" * (3 + 3 * len(routes)) + "|")
    for case in args.cases:
        med = interleaved_medians(_functions(case), repeat=30 if "1e3" in case or "1e5" in case else 15)
        native, direct = med["optax"], med["lossengine on NumPy"]
        us = lambda s: f"{s * 1e6:.0f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"      # noqa: E731
        print(f"| {case} | " + " | ".join(us(med[r]) for r in routes) + f" | {us(native)} | {us(direct)} | "
              + " | ".join(us(med[r] - direct) for r in routes) + " | "
              + " | ".join(f"{med[r] / native:.2f}x" for r in routes) + " |")
