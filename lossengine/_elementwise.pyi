"""Type stub for the compiled elementwise kernels (pyx/elementwise.pyx)."""
from typing import Optional

import numpy as np

LOSS_KINDS: tuple[str, ...]
PLUGIN_CAPSULE_NAME: str
PLUGIN_CHUNK_CAPSULE_NAME: str
PLUGIN_MAX_OPERANDS: int

def run(
    kind: str,
    options: dict,
    n: int,
    args: list[np.ndarray],
    grads: list[Optional[np.ndarray]],
    loss_out: Optional[np.ndarray],
    grad_output: np.ndarray,
    grad_scale: float,
    num_threads: int,
    min_parallel: int,
) -> tuple[float, int]:
    """One fused pass: (sum of element losses, domain bitmask of the first offending element or 0)."""

def run_plugin(
    element_function: object,
    chunk_function: Optional[object],
    params: np.ndarray,
    n: int,
    args: list[np.ndarray],
    grads: list[Optional[np.ndarray]],
    loss_out: Optional[np.ndarray],
    grad_output: np.ndarray,
    grad_scale: float,
    num_threads: int,
    min_parallel: int,
) -> tuple[float, int]:
    """``run`` for a compiled plugin's PyCapsule element (and optional chunk) function."""

def openmp_enabled() -> bool: ...
def max_threads() -> int: ...
def compile_flags() -> list[str]: ...
def _selftest_capsules() -> tuple[object, object]: ...
