"""Type stub for the compiled CTC kernel (pyx/ctc.pyx)."""
from typing import Optional

import numpy as np

class CTCKernel:
    blank: int
    zero_infinity: bool
    from_logits: bool
    per_target_length: bool
    log_space: bool

    def __init__(self, *, blank: int, zero_infinity: bool, from_logits: bool, per_target_length: bool,
                 log_space: bool = False) -> None: ...

    def run(self, *, log_probs: np.ndarray, targets: np.ndarray, input_lengths: np.ndarray,
            target_lengths: np.ndarray, grad: Optional[np.ndarray], nll: np.ndarray, upstream: np.ndarray,
            scale: float, num_threads: int, min_parallel: int) -> float: ...
