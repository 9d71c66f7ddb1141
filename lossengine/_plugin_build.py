"""``lossengine.extending.build_plugin``: the whole build of a compiled plugin, so that its setup.py is
the call and the few lines that find this helper (docs/plugins.md, "The build").

A compiled plugin cimports lossengine's public .pxd files (lossengine/elementwise_api.pxd,
lossengine/rowwise_api.pxd) and should be compiled with the flags lossengine's own kernels were
(``lossengine.plugin_build_options()``). lossengine is not on PyPI, so it cannot be a build requirement, and
under pip's default build isolation the build cannot import it. A plugin's setup.py therefore imports
``build_plugin`` from lossengine when it can, and otherwise asks the python pip installs into
(``sys.executable -E``: without pip's isolation variables) where this file is and runs it by path with
``runpy``. So this file stands alone: the standard library at module level, setuptools and Cython inside
``build_plugin``, and lossengine itself only through ``build_options()``, which imports it or asks that
same python.
"""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys

PROBE = "import json, lossengine; print(json.dumps(lossengine.plugin_build_options()))"
# Cython directives of the example plugins: the kernels index only inside bounds they were given.
DEFAULT_DIRECTIVES = {"language_level": 3, "boundscheck": False, "wraparound": False}
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


def build_options() -> dict:
    """``lossengine.plugin_build_options()`` of the lossengine this build can import (``pip install
    --no-build-isolation``, ``python setup.py build_ext``, a PYTHONPATH), or else of the one installed in
    the environment pip installs into. The flags follow the ISA variant lossengine loads: the best this
    CPU runs, or ``LOSSENGINE_ISA`` (``LOSSENGINE_ISA=baseline`` for a plugin built for other machines)."""
    try:
        import lossengine
    except ImportError:
        pass
    else:
        return lossengine.plugin_build_options()
    # -E: without the variables (PYTHONPATH, PYTHONNOUSERSITE) pip isolates the build with, the python pip
    # installs into sees that environment: its site-packages, .pth files, editable installs, user site.
    probe = subprocess.run([sys.executable, "-E", "-c", PROBE], capture_output=True, text=True)
    if probe.returncode == 0 and probe.stdout.strip():
        return json.loads(probe.stdout.strip().splitlines()[-1])
    raise SystemExit("lossengine's build options are needed to build this plugin and neither the build nor "
                     f"{sys.executable} could import lossengine: install lossengine first (or build with "
                     f"`pip install --no-build-isolation`).\n{probe.stderr}")


def _extension(i: int, given, extension_class):
    where = f"build_plugin: extensions[{i}]"
    if isinstance(given, str):
        if not _MODULE_NAME.fullmatch(given):
            raise ValueError(f"{where} must be a dotted module name inside the plugin's package, such as "
                             f"'lossengine_myloss._kernel', got {given!r}")
        source = given.replace(".", "/") + ".pyx"
        if not os.path.isfile(source):
            raise ValueError(f"{where}: {given!r} needs its Cython source {source} (relative to {os.getcwd()})")
        return extension_class(given, [source])
    if not isinstance(given, extension_class):
        raise TypeError(f"{where} must be a module name (str) or a setuptools.Extension, got {type(given).__name__}")
    return copy.copy(given)     # the flags are set on a copy: the caller's Extension is left as it was


def build_plugin(*extensions, compiler_directives: dict | None = None, **setup_kwargs):
    """Build a compiled plugin's Cython modules against lossengine's public .pxd files, with the flags
    lossengine's own kernels were built with, and run ``setuptools.setup()``: a plugin's setup.py calls it.

    Args:
        *extensions: the compiled modules, each a dotted module name (``"lossengine_myloss._kernel"``, whose
            source is ``lossengine_myloss/_kernel.pyx`` beside setup.py) or a ``setuptools.Extension`` (its
            own sources, macros and flags are kept; lossengine's flags come before its own).
        compiler_directives: Cython directives, over the defaults ``language_level=3, boundscheck=False,
            wraparound=False``.
        **setup_kwargs: passed on to ``setuptools.setup()``; the metadata belongs in pyproject.toml.

    Returns:
        setuptools' ``Distribution``, as ``setup()`` returns it.

    Raises:
        ValueError: no extension, a module name that is not dotted or lacks its .pyx, or ``ext_modules``
            in ``setup_kwargs``.
        TypeError: an extension that is neither a str nor a ``setuptools.Extension``.
        SystemExit: lossengine could be found neither by the build nor in the environment pip installs into.
    """
    if not extensions:
        raise ValueError("build_plugin: extensions is empty; name the plugin's compiled modules, such as "
                         "build_plugin('lossengine_myloss._kernel')")
    if "ext_modules" in setup_kwargs:
        raise ValueError("build_plugin: pass the extensions as build_plugin's arguments, not as ext_modules")
    if compiler_directives is not None and not isinstance(compiler_directives, dict):
        raise TypeError(f"build_plugin: compiler_directives must be a dict, got {type(compiler_directives).__name__}")
    from setuptools import Extension, setup
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        raise ImportError('build_plugin needs Cython at build time: list "cython>=3.1" in pyproject.toml\'s '
                          "[build-system] requires") from exc
    modules = [_extension(i, given, Extension) for i, given in enumerate(extensions)]
    options = build_options()
    for module in modules:
        # lossengine's flags first, so that the plugin's own (given on its Extension) have the last word.
        module.extra_compile_args = list(options["extra_compile_args"]) + list(module.extra_compile_args or [])
        module.extra_link_args = list(options["extra_link_args"]) + list(module.extra_link_args or [])
    directives = {**DEFAULT_DIRECTIVES, **(compiler_directives or {})}
    return setup(ext_modules=cythonize(modules, include_path=list(options["include_path"]),
                                       compiler_directives=directives), **setup_kwargs)
