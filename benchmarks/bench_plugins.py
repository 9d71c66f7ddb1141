"""A compiled plugin against built-ins of similar cost, through the same driver.

    python benchmarks/bench_plugins.py [--sizes 1000000,10000000] [--repeat 15] [--threads N]

Times forward_backward (value + input gradient, reduction='mean', float32) of the lossengine-pseudohuber
plugin's pseudo_huber_loss (a sqrt and a division per element) against the built-in soft_margin_loss
(an exp/log pair per element) and smooth_l1_loss (no transcendental: the route's worst case). The pure-NumPy Cauchy plugin is
shown for scale. Median of --repeat calls, the losses taking turns; the ratio is plugin / built-in.
"""
import argparse

import numpy as np

import lossengine as le
from lossengine.bench import interleaved_medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        le.set_num_threads(args.threads)
    names = le.registry.names()
    if "pseudo_huber_loss" not in names:
        raise SystemExit("install the plugin first: pip install ./plugins/lossengine-pseudohuber")
    rng = np.random.default_rng(0)
    print(f"threads={le.get_num_threads()}  float32  forward_backward(reduction='mean')  median of {args.repeat}")
    for n in (int(s) for s in args.sizes.split(",")):
        x = rng.standard_normal(n).astype(np.float32)
        y = rng.standard_normal(n).astype(np.float32)
        sign = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)
        cases = {
            "pseudo_huber_loss (compiled plugin)": (le.registry.get("pseudo_huber_loss")(), (x, y)),
            "soft_margin_loss (built-in)": (le.registry.get("soft_margin_loss")(), (x, sign)),
            "smooth_l1_loss (built-in)": (le.registry.get("smooth_l1_loss")(), (x, y)),
        }
        if "cauchy_loss" in names and n <= 10_000_000:
            cases["cauchy_loss (NumPy plugin)"] = (le.registry.get("cauchy_loss")(reduction="mean"),
                                                          (x, (y > 0).astype(np.float32)))
        t = interleaved_medians({label: (lambda loss=loss, a=a: loss.forward_backward(*a, wrt="input"))
                                 for label, (loss, a) in cases.items()}, args.repeat)
        plugin = t["pseudo_huber_loss (compiled plugin)"]
        print(f"\nn = {n:,}")
        for label, s in t.items():
            extra = "" if label.startswith("pseudo_huber") else f"   plugin / this = {plugin / s:.2f}x"
            print(f"  {label:36} {s * 1e3:9.3f} ms  ({s / n * 1e9:6.2f} ns/element){extra}")


if __name__ == "__main__":
    main()
