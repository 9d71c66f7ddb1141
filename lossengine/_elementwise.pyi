"""Type stub for the compiled elementwise kernels (pyx/elementwise.pyx)."""
from typing import Optional

import numpy as np

LOSS_KINDS: tuple[str, ...]

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
) -> tuple[float, bool]:
    """One fused pass; returns (sum of element losses, whether an element lay outside the domain)."""

def openmp_enabled() -> bool: ...
def max_threads() -> int: ...
def compile_flags() -> list[str]: ...
