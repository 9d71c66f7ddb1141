"""Type stub for the compiled classification kernels (pyx/classification.pyx)."""
from typing import Optional

import numpy as np

KINDS: dict[str, int]
DENOMINATORS: dict[str, int]

def run(kind: int, denominator: int, n_pos: int, C: int, S: int, x: np.ndarray,
        t: Optional[np.ndarray], idx: Optional[np.ndarray], w: Optional[np.ndarray],
        gx: Optional[np.ndarray], gt: Optional[np.ndarray], loss_out: Optional[np.ndarray],
        grad_output: np.ndarray, grad_output_scale: float,
        options: tuple[float, float, int, int, int], num_threads: int,
        min_parallel: int) -> tuple[Optional[float], int]: ...
