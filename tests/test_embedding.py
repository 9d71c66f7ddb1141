"""The embedding / ranking family against torch (the committed golden values always; live torch
when installed), plus le.Distance, broadcasting, unbatched inputs, errors, layouts and threads."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import lossengine as le
from lossengine.distances import distance_loss

HERE = Path(__file__).parent
GOLDEN = HERE / "golden" / "embedding.npz"
_spec = importlib.util.spec_from_file_location("make_embedding_golden", HERE / "golden" / "make_embedding_golden.py")
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)

RTOL = {np.float64: 1e-12, np.float32: 1e-5}
CLASSES = {"MarginRankingLoss": le.MarginRankingLoss, "CosineEmbeddingLoss": le.CosineEmbeddingLoss,
           "TripletMarginLoss": le.TripletMarginLoss, "TripletMarginWithDistanceLoss": le.TripletMarginWithDistanceLoss}
DISTANCES = {None: None, "euclidean": "euclidean", "cosine": "cosine",
             "squared_euclidean": le.SquaredEuclideanDistance()}


def assert_close(actual, expected, dtype, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    rtol = RTOL[np.dtype(dtype).type]
    # Gradients that cancel to ~0 carry the rounding of the larger terms.
    atol = rtol * max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), rtol=rtol,
                               atol=atol, equal_nan=True, err_msg=what)


def make_loss(name, options):
    options = dict(options)
    if name == "TripletMarginWithDistanceLoss":
        options["distance_function"] = DISTANCES[options["distance_function"]]
    return CLASSES[name](**options)


def check_case(name, dtype, options, arrays, grad_output, value, grads):
    loss = make_loss(name, options)
    dtype = np.dtype(dtype).type
    names = gen.DIFFERENTIABLE[name]
    go = float(grad_output) if np.ndim(grad_output) == 0 else grad_output
    got_value, got_grads = loss.forward_backward(*arrays, grad_output=go, wrt=names)
    assert_close(got_value, value, dtype, "value")
    assert np.asarray(got_value).dtype == dtype
    for n, got, expected in zip(names, got_grads, grads):
        assert_close(got, expected, dtype, f"gradient wrt {n}")
        assert got.dtype == dtype
    assert_close(loss(*arrays), value, dtype, "forward")


# -- golden values (no torch needed) -------------------------------------------------------------
def test_golden_values():
    data = np.load(GOLDEN)
    cases = json.loads(str(data["manifest"]))["cases"]
    assert cases, "the golden file holds no cases"
    seen = set()
    for i, case in enumerate(cases):
        try:
            check_case(case["loss"], case["dtype"], case["options"], [data[k] for k in case["arrays"]],
                       data[case["grad_output"]], data[case["value"]], [data[k] for k in case["grads"]])
        except AssertionError as exc:
            raise AssertionError(f"golden case {i} {case['loss']} {case['dtype']} {case['options']}: {exc}") from None
        seen.add(case["loss"])
        if case["loss"] == "TripletMarginWithDistanceLoss":
            seen.add(("distance", case["options"]["distance_function"]))
    assert seen >= set(CLASSES) | {("distance", d) for d in DISTANCES}


def test_golden_file_is_current():
    """The committed file holds exactly the cases the generator yields (options and dtypes)."""
    data = np.load(GOLDEN)
    stored = json.loads(str(data["manifest"]))["cases"]
    expected = [(loss, dtype, options) for loss, dtype, options, _ in gen.cases(np.random.default_rng(20261124))]
    assert [[c["loss"], c["dtype"], c["options"]] for c in stored] == json.loads(json.dumps(expected))


# -- live torch ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def test_live_torch_on_fresh_draws(torch):
    # Every configuration of the golden generator, on new random inputs.
    rng = np.random.default_rng(7)
    for name, dtype, options, arrays in gen.cases(rng):
        arrays = tuple(np.asarray(a, dtype=dtype) for a in arrays)
        probe, _ = gen.torch_reference(torch, name, dtype, {**options, "reduction": "none"}, arrays, 1.0)
        grad_output = gen.grad_output_for(rng, options, arrays, probe.shape).astype(dtype)
        value, grads = gen.torch_reference(torch, name, dtype, options, arrays, grad_output)
        try:
            check_case(name, dtype, options, arrays, grad_output, value, grads)
        except AssertionError as exc:
            raise AssertionError(f"{name} {dtype} {options}: {exc}") from None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_large_triplet_matches_torch(torch, dtype):
    # Past the parallel cutoff, all three gradients.
    rng = np.random.default_rng(3)
    arrays = tuple(rng.standard_normal((1500, 64)).astype(dtype) for _ in range(3))
    options = dict(margin=1.0, p=2.0, eps=1e-6, swap=True, reduction="mean")
    value, grads = gen.torch_reference(torch, "TripletMarginLoss", dtype, options, arrays, 1.0)
    check_case("TripletMarginLoss", dtype, options, arrays, np.asarray(1.0), value, grads)


# -- distances -----------------------------------------------------------------------------------
EXAMPLE_DISTANCES = [le.PairwiseDistance(), le.PairwiseDistance(p=1.0), le.PairwiseDistance(p=3.0, eps=0.0),
                     le.PairwiseDistance(p=float("inf")), le.CosineDistance(), le.SquaredEuclideanDistance()]


@pytest.mark.parametrize("distance", EXAMPLE_DISTANCES, ids=repr)
def test_distances_pass_the_validator(distance):
    report = le.check(distance)
    assert report.ok, str(report)
    assert report.checks_run


def test_validator_catches_a_wrong_distance_gradient():
    class Wrong(le.Distance):
        def value_and_grad(self, x1, x2):
            diff = x1 - x2
            return (diff * diff).sum(axis=1), diff, -diff     # should be 2 diff

    report = le.check(Wrong())
    assert not report.ok
    assert any(f.check == "gradient_vs_finite_differences" for f in report.failures)


@pytest.mark.parametrize("named, distance", [("euclidean", le.PairwiseDistance()), ("cosine", le.CosineDistance()),
                                             (None, le.PairwiseDistance())])
@pytest.mark.parametrize("swap", [False, True])
def test_compiled_named_distances_agree_with_their_numpy_reference(named, distance, swap):
    # The named distances run in compiled kernels; their Distance classes are NumPy. A subclass of
    # the NumPy class is not recognized as named, so it takes the NumPy path: the two must agree.
    numpy_path = type("Reference", (type(distance),), {})()
    numpy_path.__dict__.update(vars(distance))
    rng = np.random.default_rng(11)
    a, p, n = (rng.standard_normal((9, 6)) for _ in range(3))
    a[0] = 0.0
    names = ("anchor", "positive", "negative")
    compiled = le.TripletMarginWithDistanceLoss(distance_function=named, swap=swap, reduction="none")
    reference = le.TripletMarginWithDistanceLoss(distance_function=numpy_path, swap=swap, reduction="none")
    v1, g1 = compiled.forward_backward(a, p, n, wrt=names)
    v2, g2 = reference.forward_backward(a, p, n, wrt=names)
    np.testing.assert_allclose(v1, v2, rtol=1e-12, atol=1e-14)
    for x, y in zip(g1, g2):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)


def test_plain_callable_is_a_type_error_saying_what_to_pass():
    with pytest.raises(TypeError, match=r"distance_function.*lossengine.Distance.*value_and_grad"):
        le.TripletMarginWithDistanceLoss(distance_function=lambda x, y: np.abs(x - y).sum(-1))
    with pytest.raises(TypeError, match=r"pass SquaredEuclideanDistance\(\)"):
        le.TripletMarginWithDistanceLoss(distance_function=le.SquaredEuclideanDistance)
    with pytest.raises(ValueError, match=r"distance_function.*'euclidean', 'cosine'"):
        le.TripletMarginWithDistanceLoss(distance_function="manhattan")


def test_a_distance_returning_bad_shapes_is_named():
    class Bad(le.Distance):
        def value_and_grad(self, x1, x2):
            return x1.sum(axis=1), x1[:, :1], -x2

    x = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"Bad.value_and_grad: grad_x1 must be a real array of shape \(3, 4\)"):
        le.TripletMarginWithDistanceLoss(distance_function=Bad()).backward(x, x, x)


def test_distance_receives_read_only_rows():
    seen = []

    class Spy(le.SquaredEuclideanDistance):
        def value_and_grad(self, x1, x2):
            seen.append((x1.flags.writeable, x2.flags.writeable, x1.shape))
            return super().value_and_grad(x1, x2)

    a = np.ones((2, 3))
    le.TripletMarginWithDistanceLoss(distance_function=Spy(), swap=True)(a, a[:1] * 2, a * 3)
    assert seen == [(False, False, (2, 3))] * 3


def test_with_distance_options_are_keyword_only():
    with pytest.raises(TypeError):
        le.TripletMarginWithDistanceLoss(None, 1.0)
    assert le.functional.triplet_margin_with_distance_loss(
        np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 3)), distance_function="cosine", margin=1.0) >= 0


# -- shapes, broadcasting, unbatched -------------------------------------------------------------
def test_shared_row_broadcast_gradient_is_summed():
    rng = np.random.default_rng(0)
    a, n = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    p = rng.standard_normal((1, 4))
    loss = le.TripletMarginLoss(reduction="sum")
    _, (ga, gp, gn) = loss.forward_backward(a, p, n, wrt=("anchor", "positive", "negative"))
    _, (_, gp_full, _) = loss.forward_backward(a, np.repeat(p, 5, axis=0), n, wrt=("anchor", "positive", "negative"))
    assert gp.shape == (1, 4)
    np.testing.assert_allclose(gp, gp_full.sum(axis=0, keepdims=True), rtol=1e-12)


def test_unbatched_shapes():
    v = np.arange(1.0, 5.0)
    assert le.TripletMarginLoss(reduction="none")(v, v + 1, v - 3).shape == ()
    assert le.CosineEmbeddingLoss(reduction="none")(v, -v, np.array(-1.0)).shape == ()
    assert le.MarginRankingLoss(reduction="none")(np.array(1.0), np.array(2.0), np.array(1.0)).shape == ()
    g = le.CosineEmbeddingLoss().backward(v, v[::-1], np.array(1.0), wrt="input2")
    assert g.shape == (4,)


def test_cosine_zero_rows_have_finite_gradients():
    x = np.zeros((2, 3))
    y = np.ones((2, 3))
    value, (g1, g2) = le.CosineEmbeddingLoss().forward_backward(x, y, np.array([1.0, -1.0]), wrt=("input1", "input2"))
    assert np.isfinite(value) and np.all(np.isfinite(g1)) and np.all(np.isfinite(g2))


def test_list_and_layout_inputs():
    rng = np.random.default_rng(1)
    a, p, n = (rng.standard_normal((6, 8)) for _ in range(3))
    loss = le.TripletMarginLoss(p=1.0)
    expected = loss.forward_backward(a, p, n, wrt=("anchor", "negative"))
    fortran = [np.asfortranarray(x) for x in (a, p, n)]
    strided = [np.repeat(x, 2, axis=1)[:, ::2] for x in (a, p, n)]
    swapped = [x.astype(x.dtype.newbyteorder()) for x in (a, p, n)]
    for f in fortran + strided + swapped:
        f.flags.writeable = False
    for variant in (fortran, strided, swapped, [x.tolist() for x in (a, p, n)]):
        value, grads = loss.forward_backward(*variant, wrt=("anchor", "negative"))
        assert value == expected[0]
        for g, e in zip(grads, expected[1]):
            np.testing.assert_array_equal(g, e)


# -- errors --------------------------------------------------------------------------------------
def test_bad_inputs_raise_naming_the_argument():
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match="anchor, positive, negative must have the same number of dimensions"):
        le.TripletMarginLoss()(x, x[0], x)
    with pytest.raises(ValueError, match=r"do not broadcast"):
        le.TripletMarginLoss()(x, np.zeros((2, 4)), x)
    with pytest.raises(ValueError, match=r"do not broadcast"):
        le.TripletMarginLoss()(x, np.zeros((3, 5)), x)
    with pytest.raises(ValueError, match="a 1-D target takes 2-D input1 and input2"):
        le.CosineEmbeddingLoss()(x[0], x[0], np.ones(3))
    with pytest.raises(ValueError, match="a 0-D target takes 1-D input1 and input2"):
        le.CosineEmbeddingLoss()(x, x, np.array(1.0))
    with pytest.raises(ValueError, match="input1 and input2 must have the same number of features"):
        le.CosineEmbeddingLoss()(x, x[:, :1], np.ones(3))
    with pytest.raises(ValueError, match="target must be 0-D or 1-D"):
        le.CosineEmbeddingLoss()(x, x, np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"do not broadcast"):
        le.CosineEmbeddingLoss()(x, x, np.ones(2))
    with pytest.raises(ValueError, match="input1, input2, target must have the same number of dimensions"):
        le.MarginRankingLoss()(np.zeros(3), np.zeros(3), np.array(1.0))
    with pytest.raises(TypeError, match="target must be a floating-point array"):
        le.MarginRankingLoss()(np.zeros(3), np.zeros(3), np.ones(3, int))
    with pytest.raises(TypeError, match="positive must be a floating-point array"):
        le.TripletMarginLoss()(x, x.astype(int), x)
    with pytest.raises(ValueError, match="anchor has no features"):
        le.TripletMarginLoss()(np.zeros((3, 0)), np.zeros((3, 0)), np.zeros((3, 0)))


@pytest.mark.parametrize("cls, option, value", [
    (le.TripletMarginLoss, "margin", 0.0), (le.TripletMarginLoss, "margin", -1.0), (le.TripletMarginLoss, "p", 0.0),
    (le.TripletMarginLoss, "p", -2.0), (le.TripletMarginLoss, "eps", float("nan")),
    (le.TripletMarginWithDistanceLoss, "margin", 0.0), (le.MarginRankingLoss, "margin", float("nan")),
])
def test_bad_options_raise_naming_the_option(cls, option, value):
    with pytest.raises(ValueError, match=option):
        cls(**{option: value})


def test_empty_batch():
    e = np.zeros((0, 4))
    assert np.isnan(le.TripletMarginLoss()(e, e, e))
    assert le.TripletMarginLoss(reduction="sum")(e, e, e) == 0.0
    assert le.TripletMarginLoss().backward(e, e, e).shape == (0, 4)
    assert np.isnan(le.CosineEmbeddingLoss()(e, e, np.zeros(0)))


# -- threads -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls, options", [(le.TripletMarginLoss, {"swap": True}), (le.TripletMarginLoss, {"p": 1.5}),
                                          (le.TripletMarginWithDistanceLoss, {"distance_function": "cosine"}),
                                          (le.CosineEmbeddingLoss, {"margin": 0.1}), (le.MarginRankingLoss, {})])
def test_bit_identical_across_thread_counts(cls, options):
    loss = cls(**options)
    arrays = cls.large_sample_inputs(np.random.default_rng(5), np.float32)
    names = cls.differentiable
    results = []
    for n in (1, 2, 3):
        with le.threads(n):
            value, grads = loss.forward_backward(*arrays, wrt=names)
        results.append([np.asarray(value).tobytes()] + [g.tobytes() for g in grads])
    assert results[0] == results[1] == results[2]


def test_readme_distance_example_runs():
    import re

    readme = (HERE.parent / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "le.Distance" in b)
    namespace = {}
    exec(compile(block, "README distance example", "exec"), namespace)
    ga = namespace["ga"]
    assert ga.shape == (8, 4) and np.isfinite(namespace["value"])
    # A wrong gradient in the same shape of class is caught, so the example's check is not vacuous.
    wrong = type("Wrong", (namespace["Manhattan"],), {
        "value_and_grad": lambda self, x1, x2: (np.abs(x1 - x2).sum(axis=1), np.sign(x1 - x2), np.sign(x1 - x2))})
    assert not le.check(wrong()).ok
