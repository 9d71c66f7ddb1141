"""The validator's verdicts on disk: where they live, the key a verdict is stored under, and reading
and writing one without trusting what is found (lossengine.validation decides what a verdict read
back is worth).

The key is lossengine._code_identity's digest: every file of every top-level package the class's
MRO comes from (data included, no cutoff), lossengine's own package always, and the code objects of
each class -- never a self-declared ``__module__``/``__qualname__`` alone -- plus the kernels' ISA
variant. The folder must be a directory of this user's that no one else can write (it is created
0700), and a verdict must be a regular file (opened without blocking: a FIFO at its path must not
hang the first registry use).
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

from . import _code_identity

CACHE_ENV = "LOSSENGINE_CACHE_DIR"
MAX_VERDICT_BYTES = 16 << 20


def cache_dir() -> Path:
    """Where verdicts are stored: $LOSSENGINE_CACHE_DIR, else $XDG_CACHE_HOME/lossengine, else
    ~/.cache/lossengine."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lossengine"


def private_cache_dir(create: bool) -> Path | None:
    """The cache folder if it is a directory of this user's that others cannot write (created 0700
    when ``create`` and missing), else None: no cache rather than one anyone could plant verdicts in."""
    folder = cache_dir()
    try:
        if create:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.stat(folder)
        if create and not os.environ.get(CACHE_ENV) and info.st_uid == os.geteuid() and info.st_mode & 0o077:
            os.chmod(folder, 0o700)     # the default folder, made 0755 by earlier versions
            info = os.stat(folder)
    except OSError:
        return None
    private = stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022
    return folder if private else None


def cache_key(loss_class: type) -> str | None:
    """The verdict's key: the digest of the class's code and of lossengine's own package (the
    validator and the kernels), None for what cannot be keyed (see lossengine._code_identity)."""
    if not isinstance(loss_class, type):
        return None
    code = _code_identity.code_identity(loss_class, _code_identity.module_files(__name__) or [__file__])
    if code is None:
        return None
    # The kernels' ISA variant chosen at import (LOSSENGINE_ISA, the CPU): the same files run
    # different machine code per variant, and a verdict holds for the variant it was reached on.
    from . import _isa

    variants = ",".join(f"{family}={variant}" for family, (variant, _) in sorted(_isa.chosen.items()))
    return hashlib.sha256(f"{code}\0isa {variants}".encode()).hexdigest()


def read_regular(path: Path) -> bytes | None:
    """The bytes of ``path`` if it is a regular file (not a symlink, FIFO or device) of sane size."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_VERDICT_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(MAX_VERDICT_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_verdict(key: str) -> bytes | None:
    """The stored verdict's bytes for ``key``, None when there is no usable one (no private cache
    folder, no regular file of sane size)."""
    folder = private_cache_dir(create=False)
    return None if folder is None else read_regular(folder / f"{key}.json")


def write_verdict(key: str, verdict: dict) -> None:
    """Store ``verdict`` (a report's ``to_dict``) under ``key`` atomically (a temporary file renamed
    over the target), so concurrent processes each see a whole verdict or none; an unwritable or
    shared cache directory just means no cache."""
    folder = private_cache_dir(create=True)
    if folder is None:
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(verdict, f)
            os.replace(tmp, folder / f"{key}.json")
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass
