"""Build the Cython kernels in pyx/ into extension modules inside lossengine/.

OpenMP is probed, not assumed: if the compiler cannot build and link a tiny
OpenMP program, the kernels are built serial and the build says so loudly
(``lossengine info`` reports it too, from the compiled module itself).
Source builds use -march=native unless LOSSENGINE_PORTABLE=1, and glibc's libmvec vector math when
the probe finds it. Set LOSSENGINE_BUILD_ONLY=elementwise,classification to rebuild a subset.
LOSSENGINE_SANITIZE=address,undefined builds the kernels with those sanitizers (tests/README-style
command to run under them: docs/sanitizers.md).
"""
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
OPENMP_FLAGS = ["-fopenmp"]
# No -ffast-math: NaN/inf semantics and summation order are part of the contract. FMA contraction is
# off so every build rounds the same way.
OPTIMIZE_FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]


def compiles(src: str, flags: list, libs: tuple = ()) -> bool:
    """Compile and link ``src`` with the compiler Python builds with."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    with tempfile.TemporaryDirectory() as tmp:
        c_file = Path(tmp, "probe.c")
        c_file.write_text(src)
        cmd = cc.split() + flags + [str(c_file), "-o", str(Path(tmp, "probe"))] + list(libs)
        try:
            return subprocess.run(cmd, capture_output=True).returncode == 0
        except OSError:
            return False


OPENMP_PROBE = "#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn n>0?0:1;}\n"
# A loop GCC can only vectorize by calling libmvec's vector exp: proves the declaration, the
# vectorizer and the library all work together here.
LIBMVEC_PROBE = """#include <math.h>
__attribute__((__simd__("notinbranch"))) double exp(double);
double x[1024], y[1024];
int main(void){ for (int i = 0; i < 1024; i++) y[i] = exp(x[i]); return (int)y[3]; }
"""


class BuildExt(build_ext):
    def build_extensions(self):
        flags = list(OPTIMIZE_FLAGS)
        link = []
        use_openmp = compiles(OPENMP_PROBE, OPENMP_FLAGS)
        if use_openmp:
            flags += OPENMP_FLAGS
            link += OPENMP_FLAGS
        else:
            banner = "!" * 72
            print(f"\n{banner}\nlossengine: the compiler cannot build OpenMP code; building SERIAL kernels.\n"
                  f"Every loss still works, single-threaded. `lossengine info` will say OpenMP: off.\n{banner}\n",
                  file=sys.stderr)
        # Source builds target the building CPU (AVX2/AVX-512 vector math) unless asked not to.
        if os.environ.get("LOSSENGINE_PORTABLE") != "1" and compiles("int main(void){return 0;}", ["-march=native"]):
            flags.append("-march=native")
        if compiles(LIBMVEC_PROBE, flags, ("-lmvec", "-lm")):
            flags.append("-DLE_USE_LIBMVEC")
            link += ["-lmvec"]
        sanitize = os.environ.get("LOSSENGINE_SANITIZE", "").strip()
        if sanitize:
            # A debug-friendly optimization level, frames kept for ASan's reports, and every UBSan
            # finding fatal (a test that only printed one would still pass).
            flags = [f for f in flags if f != "-O3"] + [
                "-O1", "-g", "-fno-omit-frame-pointer", f"-fsanitize={sanitize}", "-fno-sanitize-recover=all"]
            link += [f"-fsanitize={sanitize}"]
        for ext in self.extensions:
            ext.extra_compile_args = flags
            ext.extra_link_args = link
            # The module reports its own flags (`lossengine info`), so a serial build cannot hide.
            ext.define_macros.append(("LE_COMPILE_FLAGS", '"' + " ".join(flags) + '"'))
        super().build_extensions()


def render_templates():
    """pyx/*.pyx.tp -> pyx/*.pyx (Tempita, as scikit-learn builds its losses), and each family's type
    stub lossengine/_<family>.pyi from lossengine/_<family>.pyi.tp with the same loss table (the
    template's first ``{{py: ...}}`` block), so the stub lists exactly the kernels the module has.
    The rendered files are build products."""
    from Cython import Tempita

    def write(target, rendered):
        if not target.exists() or target.read_text() != rendered:
            target.write_text(rendered)

    for template in sorted((HERE / "pyx").glob("*.pyx.tp")):
        source = template.read_text()
        text = Tempita.sub(source, name=str(template.relative_to(HERE)))
        write(template.with_suffix(""),
              f"# Generated from {template.name} by setup.py: edit the template, not this file.\n" + text)
        stub = HERE / "lossengine" / f"_{template.with_suffix('').stem}.pyi.tp"
        if stub.exists():
            table = {}
            exec(re.search(r"\{\{py:\n(.*?)\n\}\}", source, re.S).group(1), table)
            table = {k: v for k, v in table.items() if k.isupper()}
            write(stub.with_suffix(""), Tempita.sub(stub.read_text(), name=str(stub.relative_to(HERE)), **table))


def extensions():
    import numpy
    from Cython.Build import cythonize

    render_templates()

    only = {s for s in os.environ.get("LOSSENGINE_BUILD_ONLY", "").split(",") if s}
    exts = [
        Extension(f"lossengine._{pyx.stem}", [str(pyx.relative_to(HERE))], include_dirs=[numpy.get_include()],
                  define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
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
