"""The embedding family's figures of record: forward_backward of MarginRankingLoss, CosineEmbeddingLoss,
TripletMarginLoss and TripletMarginWithDistanceLoss at 4096 x 128 float32 (mean, every differentiable
argument's gradient), against torch forward + backward (autograd.grad over the same arguments) and
JAX jit(value_and_grad(..., argnums=all of them)): the case table's 'wrt all' cases
(lossengine/bench/cases.py), as ``lossengine bench`` runs them. Defaults of every loss (margin 0 / 1,
p = 2, eps = 1e-6, no swap); MarginRankingLoss is elementwise, so its inputs are 4096 x 128 too.

    python benchmarks/bench_embedding.py [--repeat 60] [--markdown]     # interleaved medians and ratios
    pytest benchmarks/bench_losses.py --benchmark-enable -k "wrt all"    # the pytest-benchmark versions

Each engine's result is checked against lossengine's before anything is timed (a peer computing
something else would make its time meaningless).
"""
from __future__ import annotations

import argparse

import numpy as np

LOSSES = ("margin_ranking_loss", "cosine_embedding_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss")


def cases() -> list:
    from lossengine.bench import CASES

    return [c for c in CASES if c.loss in LOSSES and c.wrt == "all"]


def main(argv=None) -> None:
    from lossengine.bench import format_report, run_benchmarks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    report = run_benchmarks(cases(), dtype=np.float32, peers=("torch", "jax"), repeat=args.repeat)
    print(format_report(report, markdown=args.markdown))


if __name__ == "__main__":
    main()
