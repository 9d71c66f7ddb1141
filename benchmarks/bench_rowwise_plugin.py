"""The compiled row-wise example plugin against the built-in cross-entropy, through the same driver.

    python benchmarks/bench_rowwise_plugin.py [--shapes 4096x1000,65536x100] [--dtype float32] [--repeat 21] [--threads N]
    pytest benchmarks/bench_rowwise_plugin.py --benchmark-enable --benchmark-group-by=param:shape

Times forward_backward (value + input gradient, reduction='mean', float32) of lossengine-amsoftmax's
am_softmax_loss (one exp per class; float32 rows take its scaled float32 row function, compiled in
the plugin with lossengine.plugin_build_options() and sharing lossengine/row_math.pxd's float32 exp
and row max) against the built-in cross_entropy (one exp per class, the same float32 exp). The two
do the same work per class, so the ratio is the route's cost (the call through a pointer) plus
what the margin adds per row: z_t and its exp in double, the scale multiply. Median of
--repeat calls, the losses taking turns (lossengine.bench.interleaved_medians); ratio = plugin / built-in.
"""
import argparse

import numpy as np
import pytest

import lossengine as le

SHAPES = ("4096x1000", "65536x100")


def _cases(shape: str, dtype=np.float32):
    n, c = (int(v) for v in shape.split("x"))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (n, c)).astype(dtype)
    t = rng.integers(0, c, n)
    return {"am_softmax_loss (compiled row plugin)": (le.registry.get("am_softmax_loss")(), x, t),
            "cross_entropy (built-in)": (le.CrossEntropyLoss(), x, t)}


@pytest.mark.parametrize("engine", ["plugin", "builtin"])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward(benchmark, shape, engine):
    if "am_softmax_loss" not in le.registry.names():
        pytest.skip("lossengine-amsoftmax is not installed (pip install ./plugins/lossengine-amsoftmax)")
    loss, x, t = list(_cases(shape).values())[0 if engine == "plugin" else 1]
    benchmark(loss.forward_backward, x, t)


def main() -> None:
    from lossengine.bench import interleaved_medians

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        le.set_num_threads(args.threads)
    if "am_softmax_loss" not in le.registry.names():
        raise SystemExit("install the plugin first: pip install ./plugins/lossengine-amsoftmax")
    print(f"threads={le.get_num_threads()}  {args.dtype}  forward_backward(reduction='mean')  median of {args.repeat}")
    for shape in args.shapes.split(","):
        cases = _cases(shape, np.dtype(args.dtype))
        t = interleaved_medians({label: (lambda loss=loss, x=x, y=y: loss.forward_backward(x, y))
                                 for label, (loss, x, y) in cases.items()}, args.repeat)
        plugin, builtin = t.values()
        print(f"\n{shape}")
        for label, s in t.items():
            print(f"  {label:40} {s * 1e3:9.3f} ms")
        print(f"  plugin / built-in = {plugin / builtin:.2f}x")


if __name__ == "__main__":
    main()
