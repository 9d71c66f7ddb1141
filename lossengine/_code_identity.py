"""What a class's verdict depends on: a digest of the code that runs when it is called.

The validator's verdict cache is keyed by this digest, so a stored verdict is reused only for the
very code it was given for. Two sources, both always taken:

- **Files.** Every file of each top-level package the class's MRO comes from -- code, compiled
  kernels and data (a ``params.json`` the loss reads is as much its behaviour as its ``.py``) --
  with no cutoff: a package is hashed whole however many files it has (a cutoff would silently stop
  hashing exactly the plugins that need it most). A top-level module (no package) brings its own
  file and every file its installed distribution lists. lossengine's own package is always included
  (the validator and the kernels). File digests are memoized by (path, size, mtime), so a process
  hashes each file once; FIFOs, sockets and devices are never opened for reading.
- **Code objects.** Each class in the MRO contributes the code objects and constants of what it
  defines (methods, properties, nested classes, class attributes), and for module-level code without
  a file (a notebook, ``python -c``, ``__main__`` of an interactive session) the functions and
  classes those methods reach through their globals. So a class that sets ``__module__`` and
  ``__qualname__`` to a built-in's does not share the built-in's key: its methods' code objects
  (their bytecode, constants, file name and line numbers) are its own.

A value the digest cannot describe faithfully (an object whose only description is a memory
address) makes the key unstable, which costs a cache miss, never a wrong verdict. Classes defined
inside a function get no key: their behaviour can hang on closure cells that differ between calls.
"""
from __future__ import annotations

import hashlib
import marshal
import os
import stat
import sys
import time
import types
from functools import lru_cache

import numpy as np

_RACY_NS = 3_000_000_000
_file_digests: dict[tuple[str, int, int], bytes] = {}
_SKIPPED_DIRS = ("__pycache__",)
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def file_digest(path: str) -> bytes:
    """The file's sha256, memoized by (path, size, mtime). File times tick coarsely (a few ms), so
    a file modified within the last seconds could be rewritten with the same size and time: such a
    file is hashed every time, as git treats its "racily clean" entries. A non-regular file (a FIFO
    would block a read forever) stands for its type only, and is never opened for reading."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        return f"non-regular file, mode {stat.S_IFMT(info.st_mode):o}".encode()
    key = (path, info.st_size, info.st_mtime_ns)
    digest = _file_digests.get(key)
    if digest is not None:
        return digest
    # Opened without blocking and checked again: the path may have been swapped for a FIFO since.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b"non-regular file"
        h = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
        digest = h.digest()
    finally:
        os.close(fd)
    if time.time_ns() - info.st_mtime_ns > _RACY_NS:
        _file_digests[key] = digest
    return digest


def package_files(root: str) -> list[str]:
    """Every file under ``root`` (sorted; bytecode caches and hidden folders left out)."""
    found: list[str] = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d not in _SKIPPED_DIRS and not d.startswith("."))
        found.extend(os.path.join(folder, n) for n in sorted(names) if not n.endswith(_SKIPPED_SUFFIXES))
    return found


@lru_cache(maxsize=None)
def _installed_files(folder: str) -> dict[str, tuple[str, ...]]:
    """For the distributions installed in ``folder`` (its ``*.dist-info``), each top-level name they
    provide -> every file they list (RECORD), bytecode left out. Read once per folder per process:
    ``importlib.metadata.packages_distributions()`` parses every installed distribution's metadata
    (0.3 s with 90 installed), where one folder's RECORD files take milliseconds."""
    owners: dict[str, list[str]] = {}
    try:
        infos = sorted(n for n in os.listdir(folder) if n.endswith(".dist-info"))
    except OSError:
        return {}
    for info in infos:
        try:
            with open(os.path.join(folder, info, "RECORD"), encoding="utf-8") as f:
                listed = [line.rsplit(",", 2)[0] for line in f if line.strip()]
        except (OSError, UnicodeDecodeError):
            continue
        files = [os.path.normpath(os.path.join(folder, entry)) for entry in listed
                 if not entry.endswith(_SKIPPED_SUFFIXES) and "__pycache__" not in entry]
        for top in {entry.split("/", 1)[0].removesuffix(".py") for entry in listed}:
            owners.setdefault(top, []).extend(files)
    return {top: tuple(files) for top, files in owners.items()}


def _distribution_files(top_level: str, own: str) -> list[str]:
    """The files the distribution(s) installed beside the top-level module ``own`` list."""
    folder = os.path.dirname(os.path.abspath(own))
    return [f for f in _installed_files(folder).get(top_level, ()) if os.path.isfile(f)]


def module_files(module_name: str) -> list[str] | None:
    """The files behind ``module_name``: its whole top-level package, or for a top-level module its
    file and its distribution's files. None when the module has no file (see ``code_digest``)."""
    module = sys.modules.get(module_name)
    own = getattr(module, "__file__", None)
    if not own:
        return None
    top_name = module_name.partition(".")[0]
    top = sys.modules.get(top_name)
    roots = list(getattr(top, "__path__", None) or [])
    if roots:
        return [f for root in roots for f in package_files(root)]
    return sorted({os.path.abspath(own), *_distribution_files(top_name, own)})


def _value_digest(value, h, seen: set) -> None:
    """Feed what ``value`` contributes to behaviour into ``h``: code objects for functions, the
    bytes of arrays, the repr of plain constants, recursively for containers and classes."""
    if id(value) in seen:
        h.update(b"<seen>")
        return
    if isinstance(value, (types.FunctionType, type, tuple, list, dict, frozenset, set, types.CodeType)):
        seen.add(id(value))
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        h.update(f"{type(value).__name__}:{value!r}".encode())
    elif isinstance(value, types.CodeType):
        h.update(marshal.dumps(value))
    elif isinstance(value, types.FunctionType):
        _function_digest(value, h, seen)
    elif isinstance(value, property):
        for part in (value.fget, value.fset, value.fdel):
            _value_digest(part, h, seen)
    elif isinstance(value, type):
        h.update(f"class {value.__module__}.{value.__qualname__}".encode())
        if not getattr(sys.modules.get(value.__module__), "__file__", None):
            class_digest(value, h, seen)      # no file covers it: its code does
    elif isinstance(value, (tuple, list, frozenset, set)):
        items = sorted(value, key=repr) if isinstance(value, (frozenset, set)) else value
        h.update(f"{type(value).__name__}[{len(items)}]".encode())
        for item in items:
            _value_digest(item, h, seen)
    elif isinstance(value, dict):
        h.update(f"dict[{len(value)}]".encode())
        for k in sorted(value, key=repr):
            _value_digest(k, h, seen)
            _value_digest(value[k], h, seen)
    elif isinstance(value, np.ndarray):
        h.update(f"ndarray {value.dtype.str} {value.shape}".encode() + np.ascontiguousarray(value).tobytes())
    elif isinstance(value, types.ModuleType):
        h.update(f"module {value.__name__}".encode())
    else:  # a compiled function, a descriptor, an instance: its type and repr (unstable repr: a miss)
        h.update(f"{type(value).__module__}.{type(value).__qualname__}:{value!r}".encode())


def _function_digest(fn: types.FunctionType, h, seen: set) -> None:
    h.update(marshal.dumps(fn.__code__))
    _value_digest(fn.__defaults__, h, seen)
    _value_digest(fn.__kwdefaults__, h, seen)
    for cell in fn.__closure__ or ():
        try:
            _value_digest(cell.cell_contents, h, seen)
        except ValueError:  # an empty cell
            h.update(b"<empty cell>")
    if getattr(sys.modules.get(fn.__module__), "__file__", None):
        return  # module-level code with a file: the file digest covers what the globals hold
    for name in sorted(_global_names(fn.__code__)):
        if name in fn.__globals__:
            h.update(f"global {name}".encode())
            _value_digest(fn.__globals__[name], h, seen)


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def class_digest(cls: type, h, seen: set | None = None) -> None:
    """Feed the code objects and constants ``cls`` itself defines into ``h`` (not its bases')."""
    seen = set() if seen is None else seen
    for name in sorted(vars(cls)):
        if name in ("__dict__", "__weakref__", "__doc__", "__module__", "__qualname__"):
            continue
        h.update(f"attr {name}".encode())
        _value_digest(vars(cls)[name], h, seen)


def code_identity(loss_class: type, extra_files: list[str]) -> str | None:
    """The digest of what runs when ``loss_class`` is called (see the module's docstring), None
    when there is none (a class defined inside a function), a file cannot be read or a code object
    cannot be serialized (code rewritten at import, as a coverage or fuzzing tool's instrumentation
    leaves it): then nothing is cached, and the loss is validated afresh."""
    if "<locals>" in getattr(loss_class, "__qualname__", "<locals>"):
        return None
    digest = hashlib.sha256(f"{sys.version}\0{loss_class.__module__}\0{loss_class.__qualname__}".encode())
    files = set(extra_files)
    for klass in loss_class.__mro__:
        if klass is object:
            continue
        digest.update(f"\0mro {klass.__module__}.{klass.__qualname__}\0".encode())
        try:
            class_digest(klass, digest)
        except ValueError:      # marshal: "unmarshallable object" in an instrumented code object
            return None
        files.update(module_files(klass.__module__) or ())
    try:
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + file_digest(path))
    except OSError:
        return None
    return digest.hexdigest()
