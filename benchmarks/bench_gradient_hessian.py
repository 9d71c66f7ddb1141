"""gradient_hessian against scikit-learn's ``_loss`` gradient_hessian, in one interleaved run.

    python benchmarks/bench_gradient_hessian.py [--sizes 100000,1000000] [--dtype float64]
                                                [--repeat 15] [--threads N]

For the losses both have: squared error (lossengine's MSE is twice sklearn's half squared error),
Poisson, Gamma, Tweedie(1.5), binomial (BCE-with-logits) and multinomial (cross-entropy, (N, K) with
K = 10). scikit-learn runs as its boosting code calls it: preallocated ``gradient_out`` and
``hessian_out``, ``n_threads`` = lossengine's thread count; lossengine with ``out=`` likewise. Each
pair's numbers are checked to agree (factor 2 for squared error) before timing. Median of --repeat
calls per engine, engines taking turns (lossengine.bench.interleaved_medians); ratio = sklearn / lossengine
(> 1: lossengine is faster).
"""
import argparse

import numpy as np

import lossengine as le
from lossengine.bench import interleaved_medians


def cases(n: int, dtype, rng):
    from sklearn._loss import loss as sk

    x = rng.standard_normal(n).astype(dtype)
    y_pos = rng.gamma(2.0, 1.0, n).astype(dtype)
    y_bin = (rng.uniform(size=n) < 0.3).astype(dtype)
    k = 10
    xm = rng.standard_normal((n // k, k)).astype(dtype)
    ym = rng.integers(0, k, n // k)
    return [
        ("squared error", le.MSELoss(), sk.HalfSquaredError(), x, y_pos, 2.0),
        ("Poisson", le.HalfPoissonLoss(), sk.HalfPoissonLoss(), x, y_pos, 1.0),
        ("Gamma", le.HalfGammaLoss(), sk.HalfGammaLoss(), x, y_pos, 1.0),
        ("Tweedie(1.5)", le.HalfTweedieLoss(power=1.5), sk.HalfTweedieLoss(power=1.5), x, y_pos, 1.0),
        ("binomial", le.BCEWithLogitsLoss(), sk.HalfBinomialLoss(), x, y_bin, 1.0),
        (f"multinomial (K={k})", le.CrossEntropyLoss(), sk.HalfMultinomialLoss(n_classes=k), xm, ym, 1.0),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        le.set_num_threads(args.threads)
    threads = le.get_num_threads()
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    print(f"gradient_hessian, {dtype}, threads={threads} (both), median of {args.repeat}, interleaved\n")
    print("| loss | elements | lossengine | sklearn | sklearn / lossengine |\n|---|---|---|---|---|")
    ratios = []
    for n in (int(s) for s in args.sizes.split(",")):
        for label, ours, theirs, x, y, factor in cases(n, dtype, rng):
            g, h = np.empty_like(x), np.empty_like(x)
            gs, hs = np.empty_like(x), np.empty_like(x)
            y_sk = y.astype(dtype)
            ours.gradient_hessian(x, y, out=(g, h))
            theirs.gradient_hessian(y_true=y_sk, raw_prediction=x, gradient_out=gs, hessian_out=hs, n_threads=threads)
            rtol = 1e-5 if dtype == np.float32 else 1e-10
            np.testing.assert_allclose(g, factor * gs, rtol=rtol, atol=rtol)
            np.testing.assert_allclose(h, factor * hs, rtol=rtol, atol=rtol)
            t = interleaved_medians({
                "lossengine": lambda: ours.gradient_hessian(x, y, out=(g, h)),
                "sklearn": lambda: theirs.gradient_hessian(y_true=y_sk, raw_prediction=x, gradient_out=gs,
                                                           hessian_out=hs, n_threads=threads),
            }, args.repeat)
            ratio = t["sklearn"] / t["lossengine"]
            ratios.append(ratio)
            print(f"| {label} | {x.size:,} | {t['lossengine'] * 1e6:,.0f} µs | {t['sklearn'] * 1e6:,.0f} µs | {ratio:.2f}x |")
    print(f"\ngeometric mean of the ratios: {float(np.exp(np.mean(np.log(ratios)))):.2f}x")


if __name__ == "__main__":
    main()
