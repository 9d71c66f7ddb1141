"""The kernels' ISA variant, chosen when lossengine is imported.

Why: a kernel compiled for the build machine (-march=native) is fast there and may die with SIGILL
on an older CPU, and one compiled for the baseline x86-64 leaves AVX2/AVX-512 lanes unused. NumPy
solves this with dispatch targets; lossengine builds each kernel module (lossengine/_<family>.so,
the baseline) again per variant under lossengine/_variants/<variant>/ (setup.py), from the same C
source, and loads here, for every family, the best variant the running CPU supports under the
module's own name. Everything downstream (``from lossengine import _elementwise``, compiled plugins
cimporting the kernels' C API, pickles of kernel objects) sees one module per family.

``LOSSENGINE_ISA=baseline`` (or a variant's name) overrides the choice, for measurements and tests;
a variant the CPU lacks is never loaded (it would die on its first instruction). Variants differ in
the last bits only where vector math does (libmvec's vector exp/log against the scalar ones), well
inside the parity tolerances.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import warnings
from pathlib import Path

FAMILIES = ("_elementwise", "_classification", "_embedding", "_ctc")
BASELINE = "baseline"
ENV = "LOSSENGINE_ISA"
# Best first: the variant's folder and the CPU features its -march level implies (NumPy's names).
VARIANTS = (
    ("x86_64_v4", ("AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512VL", "X86_V3")),
    ("x86_64_v3", ("AVX", "AVX2", "FMA3", "BMI", "BMI2", "F16C", "LZCNT", "MOVBE", "X86_V2")),
)
_HERE = Path(__file__).resolve().parent

# family -> (variant loaded, why); filled by load_kernels.
chosen: dict[str, tuple[str, str]] = {}


def cpu_features() -> dict[str, bool]:
    """The running CPU's features as NumPy detected them (it checks the OS saves the AVX state too)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:      # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    return dict(__cpu_features__)


def supported_variants() -> list[str]:
    """The variants this CPU can run, best first (the baseline always last)."""
    features = cpu_features()
    return [name for name, needs in VARIANTS if all(features.get(f, False) for f in needs)] + [BASELINE]


def _variant_file(variant: str, family: str) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = _HERE / "_variants" / variant / f"{family}{suffix}"
        if path.is_file():
            return path
    return None


def _load(module_name: str, path: Path):
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def load_kernels(package: str) -> None:
    """Put the best runnable variant of every family in sys.modules under its baseline's name; a
    family without a built variant (a baseline-only build, a non-x86 machine) keeps the baseline."""
    runnable = supported_variants()
    forced = os.environ.get(ENV, "").strip()
    order = runnable
    if forced:
        if forced in runnable:
            order = runnable[runnable.index(forced):]
        else:
            warnings.warn(f"{ENV}={forced!r} ignored: this CPU runs {', '.join(runnable)}", RuntimeWarning,
                          stacklevel=3)
    parent = sys.modules[package]
    for family in FAMILIES:
        name = f"{package}.{family}"
        if name in sys.modules:          # already imported (a reload of the package)
            continue
        for variant in order:
            if variant == BASELINE:
                chosen[family] = (BASELINE, f"{ENV}=baseline" if forced == BASELINE else
                                  "no variant this CPU supports is built")
                break
            path = _variant_file(variant, family)
            if path is None:
                continue
            setattr(parent, family, _load(name, path))
            chosen[family] = (variant, f"{ENV}={forced}" if forced == variant else
                              "the best variant this CPU supports")
            break


def describe() -> str:
    """One line for ``lossengine info``: the variant each family runs, chosen at import."""
    variants = sorted({v for v, _ in chosen.values()}) or [BASELINE]
    built = [v for v, _ in VARIANTS if any(_variant_file(v, f) for f in FAMILIES)]
    why = sorted({reason for _, reason in chosen.values()})
    families = "" if len(variants) == 1 else " (" + ", ".join(f"{f[1:]}: {v}" for f, (v, _) in chosen.items()) + ")"
    return (f"{'/'.join(variants)}{families}, chosen at run time: {'; '.join(why)} (CPU runs: "
            f"{', '.join(supported_variants())}; built: {', '.join(built + [BASELINE])}; {ENV} overrides)")
