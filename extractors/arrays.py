"""NumPy arrays handed to PyTorch.

Arrays that come through Ray's object store are read-only views of shared memory;
``torch.as_tensor`` on them warns "The given NumPy array is not writable" once per actor (the
noise that broke the extraction bar). :func:`writable` copies exactly those arrays (small:
one window of one expert's frames or audio), so tensors never alias memory they must not write.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def writable(a: Any, dtype: Any = None) -> np.ndarray:
    """``a`` as a contiguous array PyTorch may wrap: a copy only when it is read-only (or not contiguous)."""
    arr = np.ascontiguousarray(a, dtype=dtype)
    return arr if arr.flags.writeable else arr.copy()
