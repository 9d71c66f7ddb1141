"""The plugin system: in-process registration, entry-point discovery (broken plugins included),
LOSSENGINE_DISABLE_PLUGINS, validation at registration, the Cython plugin route, the helpers for
plugin authors, the CLI, and the example plugins when installed."""
import importlib
import importlib.metadata
import os
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

import lossengine as le
import lossengine.testing as let
from lossengine import _classification, _elementwise, cli, registry, validation

# The checkout's Cython sources, found from this file: the tests import the installed package, whose
# folder need not be the checkout's.
PYX = Path(__file__).resolve().parent.parent / "pyx"


# -- losses used below ------------------------------------------------------------------------------
class Cube(le.NumpyElementwiseLoss):
    """(input - target)^3 / 3: a valid loss, with target broadcasting."""
    name = "test_plugin_cube"
    arguments = ("input", "target")
    differentiable = ("input", "target")
    broadcast_arguments = ("target",)

    def element_loss(self, x, y):
        return (x - y) ** 3 / 3.0

    def element_partials(self, x, y):
        d2 = (x - y) ** 2
        return d2, -d2


class BrokenCube(Cube):
    """The same with the input gradient off by a factor of 2: must be rejected."""
    name = "test_plugin_broken_cube"

    def element_partials(self, x, y):
        d2 = (x - y) ** 2
        return 2.0 * d2, -d2


@pytest.fixture
def clean_registry():
    """A registry reloaded before and after the test, so nothing a test registers leaks out."""
    registry._reset()
    yield
    registry._reset()


# -- in-process registration -------------------------------------------------------------------------
def test_register_and_unregister_in_process(clean_registry):
    assert "test_plugin_cube" not in le.registry.names()
    assert le.registry.register(Cube) is Cube
    assert "test_plugin_cube" in le.registry.names()
    assert le.registry.get("test_plugin_cube") is Cube
    assert le.registry.source("test_plugin_cube") == "user"
    assert le.registry.unregister("test_plugin_cube") is Cube
    assert "test_plugin_cube" not in le.registry.names()
    with pytest.raises(KeyError, match="no loss named 'test_plugin_cube'"):
        le.registry.get("test_plugin_cube")


def test_register_rejects_an_invalid_loss_and_changes_nothing(clean_registry):
    before = le.registry.names()
    with pytest.raises(le.LossValidationError) as info:
        le.registry.register(BrokenCube)
    assert isinstance(info.value, ValueError)
    assert not info.value.report.ok
    assert "gradient_vs_finite_differences" in {f.check for f in info.value.report.failures}
    assert le.registry.names() == before


def test_register_refuses_a_taken_name_and_non_losses(clean_registry):
    class Impostor(Cube):
        name = "mse_loss"

    with pytest.raises(ValueError, match="reserved for lossengine.s built-in"):
        le.registry.register(Impostor)
    assert le.registry.get("mse_loss") is le.MSELoss
    with pytest.raises(TypeError, match="is not a subclass of lossengine.Loss"):
        le.registry.register(object)


def test_validation_runs_once_per_class(clean_registry, monkeypatch):
    calls = []
    real_check = validation.check

    class Square(Cube):
        name = "test_plugin_square_once"

    def counting_check(cls, **kw):
        calls.append(cls)
        return real_check(cls, **kw)

    monkeypatch.setattr(validation, "check", counting_check)
    le.registry.register(Square)
    le.registry.unregister("test_plugin_square_once")
    le.registry.register(Square)
    assert calls == [Square]
    le.registry.unregister("test_plugin_square_once")


def test_in_process_plugin_keeps_its_valid_losses_and_records_the_rejected(clean_registry):
    plugin = types.ModuleType("inproc_plugin")

    @le.hookimpl
    def lossengine_register_losses(register):
        register(Cube)
        register(BrokenCube)

    plugin.lossengine_register_losses = lossengine_register_losses
    with pytest.warns(registry.PluginLoadWarning, match="test_plugin_broken_cube"):
        name = le.registry.register_plugin(plugin, name="inproc")
    assert "test_plugin_cube" in le.registry.names()
    assert "test_plugin_broken_cube" not in le.registry.names()
    reason = le.registry.failures()["inproc"]
    assert "rejected by the validator" in reason and "gradient_vs_finite_differences" in reason
    assert le.registry.unregister_plugin(name) == ["test_plugin_cube"]
    assert "test_plugin_cube" not in le.registry.names()
    assert "inproc" not in le.registry.failures()


# -- entry-point discovery -----------------------------------------------------------------------------
GOOD = '''
import lossengine as le
from test_plugins import Cube

@le.hookimpl
def lossengine_register_losses(register):
    register(Cube)
'''
HOOK_RAISES = '''
import lossengine as le
from test_plugins import Cube

class Other(Cube):
    name = "test_ep_half_registered"

@le.hookimpl
def lossengine_register_losses(register):
    register(Other)                       # staged, then lost: the hook fails after it
    raise RuntimeError("hook blew up")
'''
IMPORT_FAILS = '''
raise ImportError("this plugin needs a library that is not installed")
'''
INVALID = '''
import lossengine as le
from test_plugins import BrokenCube, Cube

class Fine(Cube):
    name = "test_ep_fine"

@le.hookimpl
def lossengine_register_losses(register):
    register(Fine)
    register(BrokenCube)
'''
PLUGINS = {  # entry-point name: (distribution, module, source)
    "good": ("le-test-good", "le_test_good", GOOD),
    "hookraises": ("le-test-hookraises", "le_test_hookraises", HOOK_RAISES),
    "importfails": ("le-test-importfails", "le_test_importfails", IMPORT_FAILS),
    "invalid": ("le-test-invalid", "le_test_invalid", INVALID),
}


@pytest.fixture
def fake_plugins(tmp_path, monkeypatch, clean_registry):
    """Installed-looking plugins without pip: modules plus *.dist-info folders on sys.path."""
    for ep_name, (dist, module, source) in PLUGINS.items():
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[lossengine]\n{ep_name} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # the plugins import this module
    importlib.invalidate_caches()
    yield tmp_path
    for _, module, _ in PLUGINS.values():
        sys.modules.pop(module, None)


def test_entry_point_discovery_isolates_broken_plugins(fake_plugins):
    with pytest.warns(registry.PluginLoadWarning) as warned:
        names = le.registry.names()
    # The good plugin, and the valid half of the invalid one, are served, from their distributions.
    assert "test_plugin_cube" in names
    assert le.registry.source("test_plugin_cube") == "le-test-good"
    assert "test_ep_fine" in names and le.registry.source("test_ep_fine") == "le-test-invalid"
    # Nothing from the plugin whose hook raised (not even what it registered first), nothing invalid.
    assert "test_ep_half_registered" not in names
    assert "test_plugin_broken_cube" not in names
    failures = le.registry.failures()
    assert set(failures) >= {"hookraises", "importfails", "invalid"}
    assert "good" not in failures
    assert "RuntimeError: hook blew up" in failures["hookraises"]
    assert "ImportError" in failures["importfails"] and "not installed" in failures["importfails"]
    assert "test_plugin_broken_cube" in failures["invalid"] and "rejected by the validator" in failures["invalid"]
    assert len(warned) >= 3
    # Built-ins are untouched by all of it.
    assert le.registry.source("mse_loss") == "lossengine"


def test_plugins_load_on_first_registry_use_not_at_import(fake_plugins):
    assert not registry.REGISTRY.loaded
    assert "le_test_good" not in sys.modules
    with pytest.warns(registry.PluginLoadWarning):
        le.registry.get("test_plugin_cube")
    assert "le_test_good" in sys.modules


def test_disable_plugins_by_entry_point_name(fake_plugins, monkeypatch):
    monkeypatch.setenv("LOSSENGINE_DISABLE_PLUGINS", " good, importfails ,hookraises,invalid")
    names = le.registry.names()
    assert "test_plugin_cube" not in names and "test_ep_fine" not in names
    assert le.registry.failures() == {}
    assert "le_test_good" not in sys.modules and "le_test_importfails" not in sys.modules


def test_cli_list_shows_sources_and_failures(fake_plugins, capsys):
    with pytest.warns(registry.PluginLoadWarning):
        assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("test_plugin_cube "))
    assert row.rstrip().endswith("le-test-good")
    assert next(line for line in out.splitlines() if line.startswith("mse_loss ")).rstrip().endswith(" lossengine")
    assert "hookraises: its lossengine_register_losses hook raised RuntimeError: hook blew up" in out
    assert "importfails: importing le_test_importfails raised ImportError" in out
    assert "invalid: loss 'test_plugin_broken_cube'" in out


def test_cli_check_plugin_losses(fake_plugins, capsys):
    with pytest.warns(registry.PluginLoadWarning):
        assert cli.main(["check", "test_plugin_cube"]) == 0
    assert "test_plugin_cube: ok" in capsys.readouterr().out
    assert cli.main(["check", "test_plugin_broken_cube"]) == 1
    assert "rejected when its plugin loaded" in capsys.readouterr().out
    assert cli.main(["check", "test_plugins:BrokenCube"]) == 1
    out = capsys.readouterr().out
    assert "gradient_vs_finite_differences" in out


# -- the helpers for plugin authors --------------------------------------------------------------------
def test_assert_loss_valid():
    report = let.assert_loss_valid(Cube)
    assert report.ok and report.checks_run
    with pytest.raises(AssertionError, match="gradient_vs_finite_differences"):
        let.assert_loss_valid(BrokenCube)
    assert let.assert_loss_valid("mse_loss").ok


@let.parametrize_losses(source="lossengine")
def test_parametrize_losses_over_the_builtins(loss_class):
    assert le.registry.source(loss_class.name) == "lossengine"
    let.assert_loss_valid(loss_class)


def test_numpy_base_never_hands_the_author_the_callers_arrays():
    class InPlace(Cube):
        name = "test_in_place"

        def element_loss(self, x, y):
            x -= y                                  # in place, on the base class's copy
            return x ** 3 / 3.0

    x = np.arange(6.0).reshape(2, 3)
    y = np.ones(3)
    before = x.copy()
    np.testing.assert_allclose(InPlace(reduction="none")(x, y), (before - y) ** 3 / 3.0)
    np.testing.assert_array_equal(x, before)


def test_numpy_base_unbroadcasts_gradients_and_keeps_dtypes():
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    y = np.array([0.5, -0.25, 0.0], dtype=np.float32)
    gx, gy = Cube(reduction="sum").backward(x, y, grad_output=2.0, wrt=("input", "target"))
    d2 = (x.astype(np.float64) - y) ** 2
    assert gx.dtype == np.float32 and gy.dtype == np.float32 and gy.shape == (3,)
    np.testing.assert_allclose(gx, 2.0 * d2, rtol=1e-6)
    np.testing.assert_allclose(gy, -2.0 * d2.sum(axis=0), rtol=1e-6)


# -- the Cython plugin route ----------------------------------------------------------------------------
ELEMENT, CHUNK = _elementwise._selftest_capsules()


class SelfTest(le.CompiledElementwiseLoss):
    """params[0] (x - y)^2 + params[1] w, compiled inside lossengine for these tests."""
    name = "test_compiled_selftest"
    arguments = ("input", "target", "weight")
    differentiable = ("input", "target", "weight")
    broadcast_arguments = ("weight",)
    element_function = ELEMENT
    chunk_function = CHUNK

    def __init__(self, scale=1.5, shift=0.25, reduction="mean"):
        super().__init__(reduction)
        self.scale, self.shift = scale, shift

    def element_params(self):
        return (self.scale, self.shift)


class SelfTestPerElement(SelfTest):
    chunk_function = None


@pytest.mark.parametrize("loss_class", [SelfTest, SelfTestPerElement])
def test_compiled_plugin_route_passes_the_validator(loss_class):
    let.assert_loss_valid(loss_class)


@pytest.mark.parametrize("loss_class", [SelfTest, SelfTestPerElement])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_plugin_route_matches_numpy(loss_class, reduction, dtype):
    rng = np.random.default_rng(3)
    n = 70_001                                   # several blocks, a ragged last chunk, threads
    x, y = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    w = rng.uniform(0, 1, n).astype(dtype)
    go = rng.uniform(0.5, 1.5, n) if reduction == "none" else 0.7
    value, (gx, gy, gw) = loss_class(2.0, 0.5, reduction).forward_backward(
        x, y, w, grad_output=go, wrt=("input", "target", "weight"))
    d = x.astype(np.float64) - y
    per = 2.0 * d * d + 0.5 * w
    expected = {"none": per, "mean": per.mean(), "sum": per.sum()}[reduction]
    scale = go / n if reduction == "mean" else go
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(value, expected, rtol=rtol)
    np.testing.assert_allclose(gx, scale * 4.0 * d, rtol=rtol, atol=1e-30)
    np.testing.assert_allclose(gy, -scale * 4.0 * d, rtol=rtol, atol=1e-30)
    np.testing.assert_allclose(gw, scale * 0.5 * np.ones(n), rtol=rtol)
    assert value.dtype == dtype and gx.dtype == dtype


def test_compiled_plugin_broadcast_weight_gradient_is_summed():
    x = np.arange(6.0).reshape(2, 3)
    y = np.zeros((2, 3))
    gw = SelfTest(1.0, 0.5, "sum").backward(x, y, np.array(3.0), wrt="weight")
    assert gw.shape == () and gw == pytest.approx(0.5 * 6)


def test_compiled_plugin_refuses_a_foreign_capsule():
    class NotACapsule(SelfTest):
        element_function = object()

    class WrongCapsule(SelfTest):
        element_function = CHUNK             # a chunk capsule where the element one belongs

    x = np.ones(4)
    with pytest.raises(TypeError, match="element_function must be a PyCapsule"):
        NotACapsule()(x, x, x)
    with pytest.raises(TypeError, match="capsule named 'lossengine.elementwise_api.chunk_fn.v1'"):
        WrongCapsule()(x, x, x)


def test_public_pxd_agrees_with_the_driver():
    """The plugin API is a typedef and two capsule names, declared in the public .pxd and
    implemented in pyx/elementwise.pyx.tp: the two must not drift apart."""
    package = Path(le.__file__).parent
    pxd = (package / "elementwise_api.pxd").read_text()
    assert f'"{_elementwise.PLUGIN_CAPSULE_NAME}"' in pxd
    assert f'"{_elementwise.PLUGIN_CHUNK_CAPSULE_NAME}"' in pxd
    signature = "(const double* args, const double* params, double* partials) noexcept nogil"
    assert f"ctypedef double (*element_fn){signature}" in pxd
    pyx = PYX / "elementwise.pyx.tp"
    assert f"ctypedef double (*element_fn){signature}" in pyx.read_text()
    assert le.get_include() == str(package.parent)
    options = le.plugin_build_options()
    assert options["include_path"] == [le.get_include()] and "-fopenmp" not in options["extra_compile_args"]


def test_too_many_operands_is_an_error():
    class Five(SelfTest):
        arguments = ("a", "b", "c", "d", "e")
        differentiable = ("a",)
        broadcast_arguments = ()

    x = np.ones(3)
    with pytest.raises(ValueError, match="at most 4 operands"):
        Five()(x, x, x, x, x)


# -- the example plugins, when installed ---------------------------------------------------------------
def _installed(dist):
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        if os.environ.get("LOSSENGINE_REQUIRE_EXAMPLE_PLUGINS") == "1":   # set by .ci/run
            pytest.fail(f"{dist} is not installed, and .ci/run installs it")
        pytest.skip(f"{dist} is not installed (pip install ./plugins/{dist})")


@pytest.mark.parametrize("dist, loss", [("lossengine-cauchy", "cauchy_loss"),
                                        ("lossengine-pseudohuber", "pseudo_huber_loss"),
                                        ("lossengine-amsoftmax", "am_softmax_loss")])
def test_example_plugin_is_registered_from_its_distribution(dist, loss):
    _installed(dist)
    assert loss in le.registry.names()
    assert le.registry.source(loss) == dist
    assert dist not in le.registry.failures()
    if dist != "lossengine-amsoftmax":              # the elementwise examples show the optional Hessian hook
        assert le.registry.get(loss)().has_hessian
    let.assert_loss_valid(loss)


def test_example_plugins_do_not_collide_with_builtins():
    builtin = {cls.name for cls in le.losses.BUILTIN_LOSSES}
    assert not {"cauchy_loss", "pseudo_huber_loss"} & builtin


@pytest.mark.parametrize("c", [0.1, 1.0, 5.0])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_cauchy_plugin_matches_its_formula(c, reduction):
    _installed("lossengine-cauchy")
    rng = np.random.default_rng(7)
    x, y = 3.0 * rng.standard_normal((5, 6)), rng.standard_normal((5, 6))
    go = rng.uniform(0.5, 1.5, x.shape) if reduction == "none" else 0.7
    loss = le.registry.get("cauchy_loss")(c=c, reduction=reduction)
    value, (gx, gy) = loss.forward_backward(x, y, grad_output=go, wrt=("input", "target"))
    r = (x - y) / c
    per = 0.5 * c * c * np.log1p(r * r)
    n = x.size
    np.testing.assert_allclose(value, {"none": per, "mean": per.mean(), "sum": per.sum()}[reduction], rtol=1e-12)
    scale = go / n if reduction == "mean" else go
    np.testing.assert_allclose(gx, scale * c * r / (1 + r * r), rtol=1e-12)
    np.testing.assert_allclose(gy, -gx, rtol=1e-12)
    g, h = loss.gradient_hessian(x, y)
    np.testing.assert_allclose(h, (1 - r * r) / (1 + r * r) ** 2, rtol=1e-12, atol=1e-300)


def test_pseudohuber_plugin_is_accurate_everywhere():
    _installed("lossengine-pseudohuber")
    d = np.concatenate([np.logspace(-12, 3, 300), -np.logspace(-12, 2.8, 60), [0.0, 1.0, 800.0]])
    for delta in (0.5, 1.0, 3.0):
        loss = le.registry.get("pseudo_huber_loss")(delta=delta, reduction="none")
        value, grad = loss.forward_backward(d, np.zeros_like(d), grad_output=np.ones_like(d))
        r = d.astype(np.longdouble) / delta
        s = np.sqrt(1 + r * r)
        np.testing.assert_allclose(value, (delta**2 * r * r / (s + 1)).astype(np.float64), rtol=1e-14, atol=0)
        np.testing.assert_allclose(grad, (delta * r / s).astype(np.float64), rtol=1e-14, atol=0)
        g, h = loss.gradient_hessian(d, np.zeros_like(d))
        np.testing.assert_allclose(h, (1 / s**3).astype(np.float64), rtol=1e-14, atol=0)
    assert np.isfinite(le.registry.get("pseudo_huber_loss")()(np.array([1e150, -1e150]), np.zeros(2))).all()


def test_pseudohuber_chunk_route_agrees_with_its_element_route():
    _installed("lossengine-pseudohuber")
    fast = le.registry.get("pseudo_huber_loss")

    class PerElement(fast):
        chunk_function = None

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(100_003), rng.standard_normal(100_003)
    for reduction in ("none", "mean", "sum"):
        a = fast(reduction=reduction).forward_backward(x, y, wrt=("input", "target"))
        b = PerElement(reduction=reduction).forward_backward(x, y, wrt=("input", "target"))
        np.testing.assert_allclose(a[0], b[0], rtol=1e-13)
        for ga, gb in zip(a[1], b[1]):
            np.testing.assert_allclose(ga, gb, rtol=1e-13, atol=1e-300)


# -- the row-wise Cython plugin route ---------------------------------------------------------------------
class RowSelfTest(le.CompiledRowLoss):
    """params[0] times the row's cross-entropy, compiled inside lossengine for these tests."""
    name = "test_compiled_row_selftest"
    row_function = _classification._selftest_row_capsule()
    options = le.CompiledRowLoss.options + (le.declaration.real("factor", 1.0, examples=(2.5,)),)
    check_options = ({"weight": np.array([0.5, 2.0, 1.0, 1.5]), "ignore_index": 2},)

    def row_params(self):
        return (self.factor,)


def test_row_plugin_route_passes_the_validator():
    let.assert_loss_valid(RowSelfTest)


@pytest.mark.parametrize("shape", [(7,), (300, 13), (40, 6, 3, 5)], ids=["C", "NC", "NCd1d2"])
@pytest.mark.parametrize("options", [{}, {"weight": "w"}, {"ignore_index": 2}, {"weight": "w", "ignore_index": 0}])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_plugin_route_matches_cross_entropy(shape, options, reduction, dtype):
    # The self-test row function is factor x cross-entropy, so the built-in cross_entropy (its own
    # row function, same driver) is an independent reference for weights, ignore_index, reductions,
    # grad_output and the strided (N, C, d1..dK) layout.
    rng = np.random.default_rng(5)
    C = shape[0] if len(shape) == 1 else shape[1]
    x = (3.0 * rng.standard_normal(shape)).astype(dtype)
    t = rng.integers(0, C, () if len(shape) == 1 else (shape[0],) + shape[2:])
    kw = {k: (rng.uniform(0.2, 2.0, C) if v == "w" else v) for k, v in options.items()}
    go = rng.uniform(0.5, 1.5, t.shape) if reduction == "none" else 0.7
    value, grad = RowSelfTest(**kw, reduction=reduction, factor=2.5).forward_backward(x, t, grad_output=go)
    ref_value, ref_grad = le.CrossEntropyLoss(**kw, reduction=reduction).forward_backward(x, t, grad_output=go)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(value, 2.5 * np.asarray(ref_value, np.float64), rtol=rtol, atol=1e-6 * rtol)
    np.testing.assert_allclose(grad, 2.5 * ref_grad.astype(np.float64), rtol=rtol, atol=1e-7 * rtol)
    assert np.asarray(value).dtype == dtype and grad.dtype == dtype and grad.shape == x.shape


def test_row_plugin_route_takes_any_layout_and_leaves_inputs_alone():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((9, 40))
    x = base.T                                    # Fortran-ordered (40, 9)
    x_be = x.astype(">f8")                        # non-native byte order
    x_be.flags.writeable = False
    t = rng.integers(0, 9, 40)
    want = RowSelfTest().forward_backward(np.ascontiguousarray(x), t)
    for arr in (x, x_be, np.asfortranarray(x)[:, :]):
        before = arr.copy()
        got = RowSelfTest().forward_backward(arr, t)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(arr, before)


def test_row_plugin_route_validates_targets_and_options():
    x = np.zeros((3, 4))
    with pytest.raises(IndexError, match=r"Target 4 is out of bounds at position \(1,\)"):
        RowSelfTest()(x, np.array([0, 4, 1]))
    with pytest.raises(IndexError, match="Target -1"):
        RowSelfTest()(x, np.array([0, -1, 1]))
    assert RowSelfTest(ignore_index=-1)(x, np.array([0, -1, 1])) == pytest.approx(np.log(4.0))
    with pytest.raises(ValueError, match="weight should be defined"):
        RowSelfTest(weight=np.ones(3))(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="reduction"):
        RowSelfTest(reduction="avg")
    # every row ignored: torch's 'mean' is 0 / 0
    assert np.isnan(RowSelfTest(ignore_index=1)(x, np.array([1, 1, 1])))


def test_row_plugin_params_follow_the_object():
    x, t = np.random.default_rng(2).standard_normal((4, 3)), np.array([0, 1, 2, 0])
    loss = RowSelfTest(factor=1.0)
    first = loss(x, t)
    loss.factor = 3.0
    assert loss(x, t) == pytest.approx(3.0 * first, rel=1e-14)


def test_row_plugin_refuses_a_foreign_capsule():
    class NotACapsule(RowSelfTest):
        row_function = object()

    class WrongCapsule(RowSelfTest):
        row_function = ELEMENT               # an elementwise capsule where the row one belongs

    x, t = np.ones((2, 3)), np.array([0, 1])
    with pytest.raises(TypeError, match="row_function must be a PyCapsule named 'lossengine.rowwise_api.row_fn.v1'"):
        NotACapsule()(x, t)
    with pytest.raises(TypeError, match="capsule named 'lossengine.elementwise_api.element_fn.v1'"):
        WrongCapsule()(x, t)

    class WrongFloat32(RowSelfTest):
        row_function_float32 = RowSelfTest.row_function      # the double form where the float32 one belongs

    with pytest.raises(TypeError, match="row_function_float32 must be a PyCapsule named "
                                        "'lossengine.rowwise_api.row_f32_fn.v1'.*row_fn.v1"):
        WrongFloat32()(x, t)

    class WrongScaled(RowSelfTest):
        row_function_float32_scaled = RowSelfTest.row_function

    with pytest.raises(TypeError, match="row_function_float32_scaled must be a PyCapsule named "
                                        "'lossengine.rowwise_api.row_f32_scaled_fn.v1'.*row_fn.v1"):
        WrongScaled()(x, t)


@pytest.mark.parametrize("typedef, capsule, ftype", [("row_fn", "ROW_CAPSULE_NAME", "double"),
                                                    ("row_f32_fn", "ROW_F32_CAPSULE_NAME", "float")])
def test_public_row_pxd_agrees_with_the_driver(typedef, capsule, ftype):
    package = Path(le.__file__).parent
    pxd = (package / "rowwise_api.pxd").read_text()
    assert f'"{getattr(_classification, capsule)}"' in pxd
    signature = (f"(Py_ssize_t C, const {ftype}* x, int64_t target, const double* params, {ftype}* grad) "
                 "noexcept nogil")
    assert f"ctypedef double (*{typedef}){signature}" in pxd
    pyx = PYX / "classification.pyx.tp"
    assert f"ctypedef double (*{typedef}){signature}" in pyx.read_text()


def test_public_row_pxd_scaled_form_agrees_with_the_driver():
    package = Path(le.__file__).parent
    pxd = " ".join((package / "rowwise_api.pxd").read_text().split())
    assert f'"{_classification.ROW_F32_SCALED_CAPSULE_NAME}"' in pxd
    signature = ("ctypedef double (*row_f32_scaled_fn)(Py_ssize_t C, const float* x, int64_t target, "
                 "const double* params, double scale, float* grad) noexcept nogil")
    assert signature in pxd
    pyx = PYX / "classification.pyx.tp"
    assert signature in " ".join(pyx.read_text().split())


def _am_softmax_reference(x, t, s, m):
    """NumPy, independent of the plugin's formulation: log-sum-exp by np.logaddexp.reduce over the
    class axis (axis 1 of (N, C, ...)), its gradient from that log-sum-exp."""
    onehot = np.moveaxis(np.eye(x.shape[1])[t], -1, 1)
    z = s * (x - m * onehot)
    lse = np.logaddexp.reduce(z, axis=1)
    loss = lse - np.sum(z * onehot, axis=1)
    grad = s * (np.exp(z - np.expand_dims(lse, 1)) - onehot)
    return loss, grad


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(50, 10), (6, 7, 3, 2), (9, 37)])
@pytest.mark.parametrize("scale, margin", [(30.0, 0.35), (64.0, 0.5), (1.0, 0.0), (4.0, -0.2), (20.0, 3.0), (40.0, 3.0)])
def test_amsoftmax_plugin_matches_a_numpy_reference(shape, scale, margin, dtype):
    # float32 inputs take the plugin's float32 row function, float64 its double one.
    _installed("lossengine-amsoftmax")
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, shape)
    x[0, 0] = 40.0                            # a large score: the log-sum-exp must not overflow
    x = x.astype(dtype).astype(np.float64)
    t = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    w = rng.uniform(0.5, 2.0, shape[1])
    go = rng.uniform(0.5, 1.5, t.shape)
    loss_cls = le.registry.get("am_softmax_loss")
    value, grad = loss_cls(scale, margin, w, reduction="none").forward_backward(x.astype(dtype), t,
                                                                           grad_output=go.astype(dtype))
    go = go.astype(dtype).astype(np.float64)
    ref_loss, ref_grad = _am_softmax_reference(x, t, scale, margin)
    wt = w.astype(dtype).astype(np.float64)[t]
    rtol, atol = (1e-12, 1e-13) if dtype == np.float64 else (1e-5, 1e-6 * scale)
    assert value.dtype == dtype and grad.dtype == dtype
    np.testing.assert_allclose(value, wt * ref_loss, rtol=rtol, atol=atol)
    np.testing.assert_allclose(grad, np.expand_dims(go * wt, 1) * ref_grad, rtol=10 * rtol, atol=atol)
    mean = loss_cls(scale, margin, w)(x.astype(dtype), t)
    np.testing.assert_allclose(mean, np.sum(wt * ref_loss) / np.sum(wt), rtol=rtol)


@pytest.mark.parametrize("margin", [0.2, 0.399, 0.401, 1.0])
def test_amsoftmax_float32_row_with_the_target_on_the_max_score(margin):
    # The float32 row sums exp(s x_t - M) with the other classes and swaps it for the double e_t
    # afterwards; when s m > 12 (scale 30: margin 0.401, not 0.399) it stores <float>e_t into slot
    # t first. With the target's score the row's max, slot t is the largest term, exp(s m) times
    # e_t: the swap's cancellation is at its worst. A quarter of the rows have the others' scores
    # at 0, whose terms (exp(-s) each) are lost to the 1 in slot t without the switch (relative
    # error ~1e-4 at margin 1.0), a quarter at -1, whose losses are far below the float32 rounding
    # of e_t (a float e_t in the sum is ~6e-8 off; the loss stays within 1e-9 of float64).
    _installed("lossengine-amsoftmax")
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.0, 0.5, (200, 100)).astype(np.float32)
    x[100:150] = 0.0
    x[150:] = -1.0
    t = rng.integers(0, 100, 200)
    x[np.arange(200), t] = 1.0
    value, grad = le.registry.get("am_softmax_loss")(30.0, margin, reduction="none").forward_backward(x, t)
    ref_loss, ref_grad = _am_softmax_reference(x.astype(np.float64), t, 30.0, margin)
    np.testing.assert_allclose(value, ref_loss, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-6 * 30.0)


@pytest.mark.parametrize("shape", [(50, 10), (6, 7, 3, 2)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_amsoftmax_scaled_float32_row_agrees_with_the_unscaled_one(shape, reduction):
    # float32 inputs take row_function_float32_scaled (the driver's coefficient applied inside, the
    # output row written directly for (N, C)); without it they take row_function_float32 and the
    # driver scales. Same math, rounded once instead of twice: equal to float32 rounding.
    _installed("lossengine-amsoftmax")
    loss_cls = le.registry.get("am_softmax_loss")
    assert loss_cls.row_function_float32_scaled is not None

    class Unscaled(loss_cls):
        name = "am_softmax_unscaled"
        row_function_float32_scaled = None

    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    t = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    t.flat[0] = 1                                       # ignored below
    w = rng.uniform(0.5, 2.0, shape[1])
    go = np.float32(0.7) if reduction != "none" else rng.uniform(0.5, 1.5, t.shape).astype(np.float32)
    kwargs = dict(weight=w, ignore_index=1, reduction=reduction)
    got = loss_cls(**kwargs).forward_backward(x, t, grad_output=go)
    want = Unscaled(**kwargs).forward_backward(x, t, grad_output=go)
    # The target class's entry s (p_t - 1) cancels: its float32 error is a few ulp of s times the
    # coefficient (weight 2 x grad_output 1.5 at most), about 3e-5 with s = 30.
    for a, b in zip(got, want):
        assert np.asarray(a).dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=4 * np.finfo(np.float32).eps * 30 * 3)
    assert (got[1][(0, slice(None)) + (0,) * (len(shape) - 2)] == 0).all()   # the ignored position


def test_amsoftmax_plugin_without_margin_is_scaled_cross_entropy():
    _installed("lossengine-amsoftmax")
    rng = np.random.default_rng(4)
    x, t = rng.standard_normal((64, 9)).astype(np.float32), rng.integers(0, 9, 64)
    am = le.registry.get("am_softmax_loss")(scale=2.0, margin=0.0, ignore_index=3)
    ce = le.CrossEntropyLoss(ignore_index=3)
    value, grad = am.forward_backward(x, t)
    ref_value, ref_grad = ce.forward_backward(2.0 * x, t)
    np.testing.assert_allclose(value, ref_value, rtol=2e-6)
    np.testing.assert_allclose(grad, 2.0 * ref_grad, rtol=2e-6, atol=1e-8)


def test_amsoftmax_plugin_matches_torch():
    _installed("lossengine-amsoftmax")
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x, t = rng.uniform(-1, 1, (20, 6)), rng.integers(0, 6, 20)
    w = rng.uniform(0.5, 2.0, 6)
    X = torch.tensor(x, requires_grad=True)
    T = torch.tensor(t)
    z = 30.0 * (X - 0.35 * torch.nn.functional.one_hot(T, 6).to(torch.float64))
    ref = torch.nn.functional.cross_entropy(z, T, weight=torch.tensor(w), ignore_index=2)
    ref.backward()
    loss = le.registry.get("am_softmax_loss")(weight=w, ignore_index=2)
    value, grad = loss.forward_backward(x, t)
    np.testing.assert_allclose(value, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, X.grad.numpy(), rtol=1e-10, atol=1e-14)
