"""Builds lossengine_jaxffi._handler, a C extension against XLA's FFI C API.

The header comes from ``jax.ffi.include_dir()`` of the jaxlib the handler will run with. Under pip's
build isolation jax is not importable here, so this script asks the interpreter pip installs into (the
environment's own ``python``, with pip's isolation variables removed), as lossengine's compiled example
plugins do for lossengine's build options. With ``--no-build-isolation`` jax is imported directly.
"""
import os
import subprocess
import sys

import numpy as np
from setuptools import Extension, setup

PROBE = "import jax.ffi; print(jax.ffi.include_dir())"


def jax_include_dir() -> str:
    try:
        import jax.ffi
        return jax.ffi.include_dir()
    except ImportError:
        pass
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONHOME")}
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env)
    if probe.returncode == 0 and probe.stdout.strip():
        return probe.stdout.strip().splitlines()[-1]
    sys.exit("lossengine-jaxffi: jax must be installed first (pip install \"lossengine[jax]\"): its FFI header "
             "is needed to build; if it is, build with `pip install --no-build-isolation ./jaxffi`.\n"
             + probe.stderr)


setup(ext_modules=[Extension(
    "lossengine_jaxffi._handler", ["lossengine_jaxffi/_handler.c"],
    include_dirs=[jax_include_dir(), np.get_include()],
    extra_compile_args=["-O2", "-std=c99", "-Wall"],
)])
