"""Build the Cython kernels in pyx/ into extension modules inside lossengine/.

OpenMP is probed, not assumed: if the compiler cannot build and link a tiny
OpenMP program, the kernels are built serial and the build says so loudly
(``lossengine info`` reports it too, from the compiled module itself).
Each kernel module is built for the baseline ISA (lossengine/_<family>.so) and, on x86-64, again for
x86-64-v3 (AVX2, FMA) and x86-64-v4 (AVX-512) under lossengine/_variants/<variant>/, as NumPy builds its
dispatch targets; lossengine/_isa.py loads the best variant the running CPU supports, so a wheel is
not tied to the build machine. LOSSENGINE_ISA_VARIANTS=none builds the baseline only (a comma list
picks some). glibc's libmvec vector math is used when the probe finds it. Set
LOSSENGINE_BUILD_ONLY=elementwise,classification to rebuild a subset. Build time: cythonize runs the
modules in parallel, the C compiles run on every core (build_ext's --parallel defaults to them), and
no debug information is generated (-g0; set CFLAGS=-g to keep it).
LOSSENGINE_SANITIZE=address,undefined builds the kernels with those sanitizers (the command
that runs the tests under them: .ci/sanitize, described in docs/reliability.md).
"""
import ast
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import NamedTuple, Optional

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
# LOSSENGINE_OPENMP_FLAGS replaces them where OpenMP is spelled otherwise, e.g. Apple clang with a
# vendored libomp (pyproject.toml's cibuildwheel table): used for the probe, compiling and linking.
OPENMP_FLAGS = os.environ.get("LOSSENGINE_OPENMP_FLAGS", "-fopenmp").split()
# No -ffast-math: NaN/inf semantics and summation order are part of the contract. FMA contraction is
# off so every build rounds the same way.
# No peeling for alignment: a peeled loop computes its first elements with the scalar exp/log and
# the rest with libmvec's vector ones, so which element got which (and its last bit) would depend
# on where the allocator placed the array (seen with -march=x86-64-v4's generic tuning).
OPTIMIZE_FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]
NO_PEELING_FLAG = "--param=vect-max-peeling-for-alignment=0"     # GCC's; probed


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
        if compiles("int main(void){return 0;}", [NO_PEELING_FLAG]):
            flags.append(NO_PEELING_FLAG)
        if compiles(LIBMVEC_PROBE, flags, ("-lmvec", "-lm")):
            flags.append("-DLE_USE_LIBMVEC")
            link += ["-lmvec"]
        # No debug information: Python's CFLAGS bring -g, which took a quarter of the kernels' compile
        # time and changes no instruction (GCC's rule; the kernel functions disassemble identically).
        # CFLAGS asking for it (-g, -ggdb, ...) keep it, and the sanitizer build adds its own -g.
        if not any(f.startswith("-g") for f in os.environ.get("CFLAGS", "").split()):
            flags.append("-g0")
        sanitize = os.environ.get("LOSSENGINE_SANITIZE", "").strip()
        if sanitize:
            # A debug-friendly optimization level, frames kept for ASan's reports, and every UBSan
            # finding fatal (a test that only printed one would still pass).
            flags = [f for f in flags if f != "-O3"] + [
                "-O1", "-g", "-fno-omit-frame-pointer", f"-fsanitize={sanitize}", "-fno-sanitize-recover=all"]
            link += [f"-fsanitize={sanitize}"]
        built = {ext.name for ext in self.extensions}
        for ext in self.extensions:
            march = getattr(ext, "le_march", None)
            ext_flags = flags + ([march] if march else [])
            ext.extra_compile_args = ext_flags
            ext.extra_link_args = link
            # The module reports its own flags (`lossengine info`), so a serial build cannot hide.
            ext.define_macros.append(("LE_COMPILE_FLAGS", '"' + " ".join(ext_flags) + '"'))
            # A variant not rebuilt with its family would be loaded with the old code: remove it.
            if march is None:
                family = ext.name.rpartition(".")[2]
                for variant, _ in ISA_VARIANTS:
                    name = f"lossengine._variants.{variant}.{family}"
                    if name in built:
                        continue
                    # Both copies: the build folder's, and the source tree's that an in-place build
                    # made earlier (setuptools builds in the build folder with inplace off, then
                    # copies, so get_ext_fullpath names only the former here).
                    for stale in (Path(self.get_ext_fullpath(name)), HERE / self.get_ext_filename(name)):
                        if stale.exists():
                            stale.unlink()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1
        super().build_extensions()

    def copy_extensions_to_source(self):
        # --inplace / editable builds: the variants' folders are not packages, so nothing made them.
        for ext in self.extensions:
            (HERE / Path(*ext.name.split(".")[:-1])).mkdir(parents=True, exist_ok=True)
        super().copy_extensions_to_source()


# (folder under lossengine/_variants, -march flag); lossengine/_isa.py holds the CPU features each needs.
ISA_VARIANTS = (("x86_64_v3", "-march=x86-64-v3"), ("x86_64_v4", "-march=x86-64-v4"))


def isa_variants() -> list:
    """The variants to build: those of ISA_VARIANTS named by LOSSENGINE_ISA_VARIANTS (default all;
    'none' for the baseline only) that this compiler targets."""
    wanted = os.environ.get("LOSSENGINE_ISA_VARIANTS", "all").strip()
    chosen = [v for v in ISA_VARIANTS if wanted == "all" or v[0] in wanted.split(",")]
    return [(v, march) for v, march in chosen if compiles("int main(void){return 0;}", [march])]


class LossRow(NamedTuple):
    """One elementwise loss's row in pyx/elementwise_losses.pxi: the ``#@ loss(...)`` comment above its
    math. The keys are that file header's."""
    kernel: str
    element: str
    operands: int
    options: tuple = ()
    hessian: Optional[str] = None
    domain: Optional[str] = None
    variant: Optional[str] = None
    rerun_input_only: bool = False
    math32: bool = False

    FUNCTIONS = ("element", "hessian", "domain", "variant")    # keys naming a cdef inline function

    def problem(self):
        if not 2 <= self.operands <= 4:
            return f"operands={self.operands}; an elementwise loss reads 2 to 4"


class ClassificationRow(NamedTuple):
    """One classification loss's row in pyx/classification_losses.pxi: the ``#@ loss(...)`` comment
    above its row function. The keys are that file header's."""
    kernel: str
    row: str
    targets: Optional[str]
    options: tuple = ()
    hessian: bool = False
    lanes: Optional[str] = None

    FUNCTIONS = ("row", "lanes")
    TARGETS = ("ignorable", "indices", "listed", None)

    def problem(self):
        if self.targets not in self.TARGETS:
            return f"targets={self.targets!r}; a classification loss's targets are one of {self.TARGETS}"


class EmbeddingRow(NamedTuple):
    """One embedding loss's row in pyx/embedding_losses.pxi: the ``#@ loss(...)`` comment above its row
    function. The keys are that file header's."""
    kernel: str
    row: str
    inputs: int
    options: tuple = ()
    scratch: int = 0

    FUNCTIONS = ("row",)
    MAX_INPUTS = 3      # pyx/embedding.pyx.tp's

    def problem(self):
        if not 1 <= self.inputs <= self.MAX_INPUTS:
            return f"inputs={self.inputs}; an embedding loss reads 1 to {self.MAX_INPUTS}"
        if self.scratch < 0:
            return f"scratch={self.scratch}; a row's scratch is 0 or more (D + 1)-double rows"


# A family's losses file pyx/<family>_losses.pxi and the type of its rows.
ROW_TYPES = {"elementwise": LossRow, "classification": ClassificationRow, "embedding": EmbeddingRow}


def _kind_name(annotation) -> str:
    """A row key's annotation by name: a type, typing's Optional[str], or either as a string or a
    ForwardRef (pip runs this file through setuptools.build_meta, whose compile() passes on its own
    `from __future__ import annotations`: the annotations arrive as strings there)."""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(getattr(annotation, "__forward_arg__", annotation)).replace("typing.", "")


def _is_a(value, annotation) -> bool:
    """Whether a row's literal has the type its key is annotated with (a tuple key takes a list)."""
    name = _kind_name(annotation)
    kinds = {"str": str, "int": int, "bool": bool, "tuple": (list, tuple), "Optional[str]": (str, type(None))}[name]
    return isinstance(value, kinds) and (name == "bool" or not isinstance(value, bool))


def loss_rows(path: Path) -> list:
    """The rows of a losses file pyx/<family>_losses.pxi (of the type ROW_TYPES names for the family),
    in file order. A row is a ``#@ loss(key=literal, ...)`` comment, continued on the ``#@`` lines that
    follow it. A malformed row, a missing or unknown key, a literal of the wrong type, a value the
    family refuses, a repeated kernel, or a function the row names that the file does not define as
    ``cdef inline`` stops the build with the file and line."""
    row_type = ROW_TYPES.get(path.name[:-len("_losses.pxi")])
    if row_type is None:
        raise SystemExit(f"{path.name}: setup.py's ROW_TYPES names no row type for this family")
    text = path.read_text()
    rows, seen, lines = [], {}, text.split("\n")
    i = 0
    while i < len(lines):
        if not lines[i].startswith("#@"):
            i += 1
            continue
        first = i
        while i < len(lines) and lines[i].startswith("#@"):
            i += 1
        where = f"{path.name}:{first + 1}"
        source = " ".join(line[2:].strip() for line in lines[first:i])
        try:
            call = ast.parse(source, mode="eval").body
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "loss"
                    and not call.args):
                raise ValueError("not loss(key=value, ...)")
            fields = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
            if None in fields:
                raise ValueError("** is not a row key")
            row = row_type(**fields)
        except (SyntaxError, ValueError, TypeError) as exc:
            raise SystemExit(f"{where}: a row is #@ loss(key=literal, ...) with the keys {row_type._fields}"
                             f" ({exc})") from None
        wrong = [key for key, kind in row_type.__annotations__.items() if not _is_a(getattr(row, key), kind)]
        if wrong or not all(len(option) == 2 and all(isinstance(s, str) for s in option) for option in row.options):
            typed = ", ".join(f"{key} {_kind_name(kind)}" for key, kind in row_type.__annotations__.items())
            raise SystemExit(f"{where}: {', '.join(wrong) or 'options'} of the wrong type; options is"
                             f" [(C type, name)]; the keys: {typed}")
        row = row._replace(options=tuple(tuple(option) for option in row.options))
        problem = row.problem()
        if problem:
            raise SystemExit(f"{where}: {problem}")
        for key in row_type.FUNCTIONS:
            name = getattr(row, key)
            if name is not None and not re.search(rf"^cdef inline \w+ {re.escape(name)}\(", text, re.M):
                raise SystemExit(f"{where}: {key}={name!r}, but {path.name} defines no cdef inline {name}(...)")
        if row.kernel in seen:
            raise SystemExit(f"{where}: kernel={row.kernel!r} again (the row at line {seen[row.kernel]} has it)")
        seen[row.kernel] = first + 1
        rows.append(row)
    return rows


def render_templates():
    """pyx/*.pyx.tp -> pyx/*.pyx (Tempita, as scikit-learn builds its losses), and each family's type
    stub lossengine/_<family>.pyi from lossengine/_<family>.pyi.tp with the same loss table, so the stub
    lists exactly the kernels the module has. A family's table is the rows of its losses file
    pyx/<family>_losses.pxi where it has one (ELEMENTWISE and so on: the family's name), else
    its template's first ``{{py: ...}}`` block. The rendered files are build products."""
    from Cython import Tempita

    def write(target, rendered):
        if not target.exists() or target.read_text() != rendered:
            target.write_text(rendered)

    for template in sorted((HERE / "pyx").glob("*.pyx.tp")):
        family = template.with_suffix("").stem
        source = template.read_text()
        losses = template.with_name(f"{family}_losses.pxi")
        rows = {family.upper(): loss_rows(losses)} if losses.exists() else {}
        text = Tempita.sub(source, name=str(template.relative_to(HERE)), **rows)
        write(template.with_suffix(""),
              f"# Generated from {template.name} by setup.py: edit the template, not this file.\n" + text)
        stub = HERE / "lossengine" / f"_{family}.pyi.tp"
        if stub.exists():
            table = dict(rows)
            block = re.search(r"\{\{py:\n(.*?)\n\}\}", source, re.S)
            if block:
                exec(block.group(1), table)
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
    exts = cythonize(
        exts,
        # The modules in parallel, one process each (Linux: fork; elsewhere serial, as before).
        nthreads=(os.cpu_count() or 1) if sys.platform.startswith("linux") and len(exts) > 1 else 0,
        include_path=[str(HERE / "pyx"), str(HERE)],   # HERE: lossengine/*.pxd shared with plugins
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    )
    return exts + variant_extensions(exts)


def variant_extensions(exts: list) -> list:
    """Each kernel module again per ISA variant (lossengine/_isa.py loads them): the same generated
    C, so the module keeps its name and PyInit symbol and only its folder differs. Each variant
    compiles a copy of the C file, so that every build has its own object file (parallel builds)."""
    if os.environ.get("LOSSENGINE_SANITIZE", "").strip():
        return []
    variants, targets = [], isa_variants()
    for ext in exts:
        family = ext.name.rpartition(".")[2]
        c_source = Path(ext.sources[0])
        for variant, march in targets:
            copy = c_source.parent / "_variants" / variant / c_source.name
            copy.parent.mkdir(parents=True, exist_ok=True)
            if not copy.exists() or copy.read_bytes() != c_source.read_bytes():
                shutil.copyfile(c_source, copy)
            variant_ext = Extension(f"lossengine._variants.{variant}.{family}", [str(copy)] + ext.sources[1:],
                                    include_dirs=list(ext.include_dirs), define_macros=list(ext.define_macros))
            variant_ext.le_march = march
            variants.append(variant_ext)
    return variants


# Guarded so that tests can load loss_rows and render_templates without building (setuptools and
# pip run this file as __main__).
if __name__ == "__main__":
    setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
