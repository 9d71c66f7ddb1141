"""Build the Cython kernels in pyx/ into extension modules inside lossengine/.

OpenMP is probed, not assumed: if the compiler cannot build and link a tiny
OpenMP program, the kernels are built serial and the build says so loudly
(``lossengine info`` reports it too, from the compiled module itself).
Set LOSSENGINE_BUILD_ONLY=elementwise,classification to rebuild a subset.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
OPENMP_FLAGS = ["-fopenmp"]
OPTIMIZE_FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math"]


def openmp_works() -> bool:
    """Compile and link a small OpenMP program with the compiler Python builds with."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    src = "#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn n>0?0:1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        c_file = Path(tmp, "probe.c")
        c_file.write_text(src)
        cmd = cc.split() + OPENMP_FLAGS + [str(c_file), "-o", str(Path(tmp, "probe"))]
        try:
            return subprocess.run(cmd, capture_output=True).returncode == 0
        except OSError:
            return False


class BuildExt(build_ext):
    def build_extensions(self):
        use_openmp = openmp_works()
        if not use_openmp:
            banner = "!" * 72
            print(f"\n{banner}\nlossengine: the compiler cannot build OpenMP code; building SERIAL kernels.\n"
                  f"Every loss still works, single-threaded. `lossengine info` will say OpenMP: off.\n{banner}\n",
                  file=sys.stderr)
        for ext in self.extensions:
            flags = OPTIMIZE_FLAGS + (OPENMP_FLAGS if use_openmp else [])
            ext.extra_compile_args = flags
            ext.extra_link_args = OPENMP_FLAGS if use_openmp else []
            # The module reports its own flags (`lossengine info`), so a serial build cannot hide.
            ext.define_macros.append(("LE_COMPILE_FLAGS", '"' + " ".join(flags) + '"'))
        super().build_extensions()


def extensions():
    from Cython.Build import cythonize

    only = {s for s in os.environ.get("LOSSENGINE_BUILD_ONLY", "").split(",") if s}
    exts = [
        Extension(f"lossengine._{pyx.stem}", [str(pyx.relative_to(HERE))])
        for pyx in sorted((HERE / "pyx").glob("*.pyx"))
        if not only or pyx.stem in only
    ]
    return cythonize(
        exts,
        include_path=[str(HERE / "pyx")],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
