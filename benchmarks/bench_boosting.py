"""Gradient boosting with a lossengine objective against each library's built-in objective and a
plain NumPy objective: training time and final loss, per library, one run of each in turn.

    python benchmarks/bench_boosting.py [--sizes 100000,1000000] [--rounds 50] [--threads 1]
                                        [--repeat 1] [--libraries xgboost,lightgbm,catboost]

The task: binary classification, n rows of 10 standard-normal features, labels drawn from a
logistic model with an interaction (~30% positives). Three objectives per library, with the
library's defaults otherwise and the same start (the built-in's boost_from_average; the two custom
objectives the log-odds of the positive rate, lossengine's ``start_score``, by hand for NumPy):

- built-in: XGBoost ``binary:logistic``, LightGBM ``binary``, CatBoost ``Logloss``;
- lossengine: ``objective(BCEWithLogitsLoss())`` of lossengine.integrations.<library>;
- NumPy: the gradient p - y and Hessian p (1 - p) written in NumPy, as a user would.

Time: CPU seconds of the library's train/fit call (this process's, ``time.process_time``; median of
--repeat, the three taking turns), and wall-clock seconds. With one thread (the default) CPU time is
the figure to compare on a shared machine: it does not count the time other processes hold the core.
Final loss: the mean binary cross-entropy of the trained model's raw predictions on the training
rows. Every library and lossengine run on --threads threads (lossengine: --lossengine-threads, a
number or `default`, the count a user who sets none gets). CatBoost needs a metric next
to a Python objective: its built-in run computes Logloss too (its default), the custom ones their
own metric (lossengine's ``metric``; NumPy's by hand); its leaf backtracking, a Logloss default
Python objectives do not get, is off for all three.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import warnings

import numpy as np

import lossengine as le

BCE = le.BCEWithLogitsLoss()


def data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 10)).astype(np.float32)
    logit = X[:, 0] - 0.8 * X[:, 1] + 0.6 * X[:, 2] * X[:, 3] + 0.3 * np.sin(3 * X[:, 4]) - 0.9
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    return X, y


def final_loss(margin, y) -> float:
    return float(BCE(np.asarray(margin, np.float64), y))


# -- NumPy objectives, as users write them ------------------------------------------------------------
def numpy_grad_hess(margin, y):
    p = 1.0 / (1.0 + np.exp(-margin))
    return p - y, p * (1.0 - p)


def numpy_start(y) -> float:
    p = y.mean()
    return float(np.log(p / (1 - p)))


# -- one training per (library, objective) ------------------------------------------------------------
def xgboost_runs(X, y, rounds, threads):
    import xgboost as xgb
    from lossengine.integrations import xgboost as lx

    d = xgb.DMatrix(X, y, nthread=threads)
    params = {"max_depth": 6, "eta": 0.1, "tree_method": "hist", "nthread": threads}

    def builtin():
        return xgb.train(dict(params, objective="binary:logistic"), d, rounds)

    def ours():
        return xgb.train(dict(params, base_score=lx.start_score(BCE, y)), d, rounds, obj=lx.objective(BCE))

    def numpy():
        return xgb.train(dict(params, base_score=numpy_start(y)), d, rounds,
                         obj=lambda preds, dtrain: numpy_grad_hess(preds, dtrain.get_label()))

    def margin(model):
        return model.predict(d, output_margin=True)

    return {"built-in": builtin, "lossengine": ours, "NumPy": numpy}, margin


def lightgbm_runs(X, y, rounds, threads):
    import lightgbm as lgb
    from lossengine.integrations import lightgbm as ll

    params = {"num_leaves": 31, "learning_rate": 0.1, "num_threads": threads, "verbose": -1}
    n = len(y)

    def builtin():
        return lgb.train(dict(params, objective="binary"), lgb.Dataset(X, y), rounds)

    def ours():
        start = ll.start_score(BCE, y)
        model = lgb.train(dict(params, objective=ll.objective(BCE)),
                          lgb.Dataset(X, y, init_score=ll.init_score(start, n)), rounds)
        return ll.add_start_score(model, start)

    def numpy():
        start = numpy_start(y)
        model = lgb.train(dict(params, objective=lambda preds, ds: numpy_grad_hess(preds, ds.get_label())),
                          lgb.Dataset(X, y, init_score=np.full(n, start)), rounds)
        return ll.add_start_score(model, start)

    def margin(model):
        return model.predict(X, raw_score=True, num_threads=threads)

    return {"built-in": builtin, "lossengine": ours, "NumPy": numpy}, margin


class _NumpyLoglossObjective:
    def calc_ders_range(self, approxes, targets, weights):
        g, h = numpy_grad_hess(np.asarray(approxes), np.asarray(targets))
        return np.column_stack((-g, -h))


class _NumpyLoglossMetric:
    def is_max_optimal(self):
        return False

    def evaluate(self, approxes, target, weight):
        x, y = np.asarray(approxes[0]), np.asarray(target)
        return float(np.sum(np.logaddexp(0.0, x) - y * x)), float(len(y))

    def get_final_error(self, error, weight):
        return error / weight


def catboost_runs(X, y, rounds, threads):
    import catboost as cb
    from lossengine.integrations import catboost as lc

    warnings.filterwarnings("ignore", message="Failed to import numba", category=UserWarning)
    # Logloss's one default a Python objective does not get: the leaf values' backtracking; off for
    # all three, so the three train the same model.
    params = {"iterations": rounds, "depth": 6, "learning_rate": 0.1, "thread_count": threads, "verbose": False,
              "random_seed": 0, "leaf_estimation_backtracking": "No", "allow_writing_files": False}
    n = len(y)

    def builtin():
        model = cb.CatBoost(dict(params, loss_function="Logloss", boost_from_average=True))  # off by default
        return model.fit(cb.Pool(X, y))

    def ours():
        start = lc.start_score(BCE, y)
        model = cb.CatBoost(dict(params, loss_function=lc.objective(BCE), eval_metric=lc.metric(BCE)))
        return lc.add_start_score(model.fit(cb.Pool(X, y, baseline=lc.baseline(start, n))), start)

    def numpy():
        start = numpy_start(y)
        model = cb.CatBoost(dict(params, loss_function=_NumpyLoglossObjective(), eval_metric=_NumpyLoglossMetric()))
        return lc.add_start_score(model.fit(cb.Pool(X, y, baseline=np.full(n, start))), start)

    def margin(model):
        return model.predict(X, prediction_type="RawFormulaVal", thread_count=threads)

    return {"built-in": builtin, "lossengine": ours, "NumPy": numpy}, margin


LIBRARIES = {"xgboost": xgboost_runs, "lightgbm": lightgbm_runs, "catboost": catboost_runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--libraries", default=",".join(LIBRARIES))
    ap.add_argument("--lossengine-threads", default=None,
                    help="lossengine's count: a number, or 'default' (no le.threads: the count a user who "
                         "sets none gets, one thread beside XGBoost's own OpenMP runtime); default: --threads")
    args = ap.parse_args()
    lt = args.lossengine_threads if args.lossengine_threads is not None else str(args.threads)
    if lt != "default" and not (lt.isascii() and lt.isdigit() and int(lt) > 0):
        ap.error(f"--lossengine-threads must be a positive integer or 'default', got {lt!r}")
    print(f"binary logistic, 10 features, {args.rounds} rounds, {args.threads} thread(s) "
          f"(lossengine: {lt}), median of {args.repeat}")
    print(f"{'library':10} {'rows':>9} {'objective':11} {'CPU s':>8} {'vs built-in':>11} {'wall s':>7} "
          f"{'final loss':>11}")
    with (contextlib.nullcontext() if lt == "default" else le.threads(int(lt))):
        for n in (int(s) for s in args.sizes.split(",")):
            X, y = data(n)
            for library in args.libraries.split(","):
                runs, margin = LIBRARIES[library](X, y, args.rounds, args.threads)
                cpu = {name: [] for name in runs}
                wall = {name: [] for name in runs}
                models = {}
                for _ in range(args.repeat):
                    for name, run in runs.items():
                        c0, w0 = time.process_time(), time.perf_counter()
                        models[name] = run()
                        cpu[name].append(time.process_time() - c0)
                        wall[name].append(time.perf_counter() - w0)
                base = statistics.median(cpu["built-in"])
                for name in runs:
                    c = statistics.median(cpu[name])
                    w = statistics.median(wall[name])
                    print(f"{library:10} {n:>9} {name:11} {c:8.2f} {c / base:10.2f}x {w:7.2f} "
                          f"{final_loss(margin(models[name]), y):11.5f}", flush=True)


if __name__ == "__main__":
    main()
