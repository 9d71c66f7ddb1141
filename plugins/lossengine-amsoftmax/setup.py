"""Builds lossengine_amsoftmax._kernel against lossengine's public Cython API, with lossengine's flags.

What the build needs from lossengine is ``lossengine.plugin_build_options()``: the include path of
its .pxd files (lossengine/rowwise_api.pxd) and the compiler flags its own kernels were built
with. lossengine is not on PyPI, so it cannot be a build requirement: under pip's build isolation
this script asks the interpreter pip installs into (the environment's own ``python``, with pip's
isolation variables removed) for them. With ``--no-build-isolation``, or any builder that can import
lossengine, it is imported directly.
"""
import json
import os
import subprocess
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

PROBE = "import json, lossengine; print(json.dumps(lossengine.plugin_build_options()))"


def lossengine_build_options() -> dict:
    try:
        import lossengine
        return lossengine.plugin_build_options()
    except ImportError:
        pass
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONHOME")}
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env)
    if probe.returncode == 0 and probe.stdout.strip():
        return json.loads(probe.stdout.strip().splitlines()[-1])
    sys.exit("lossengine-amsoftmax: lossengine must be installed first (its .pxd files and build flags "
             "are needed to build); if it is, build with `pip install --no-build-isolation "
             "./lossengine-amsoftmax`.\n" + probe.stderr)


options = lossengine_build_options()
setup(ext_modules=cythonize(
    [Extension("lossengine_amsoftmax._kernel", ["lossengine_amsoftmax/_kernel.pyx"],
               extra_compile_args=options["extra_compile_args"], extra_link_args=options["extra_link_args"])],
    include_path=options["include_path"],
    compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False},
))
