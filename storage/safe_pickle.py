"""Read the collaborative-experts released feature pickles without running arbitrary pickle code.

Those files are ``{video_id: ndarray}`` mappings (arrays of ``[D]`` or ``[T, D]``, NaN where a
video lacks the expert). :func:`load_feature_pickle` unpickles with a whitelist that admits
only what builds numpy arrays (plus the built-in containers pickle makes without globals):
any other global (``os.system``, ``builtins.eval``, a class) stops the load with an error
naming it, before it can run.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from videxperts.errors import UserError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class UnsafePickleError(UserError):
    """A pickle that asks for something other than numpy arrays, lists and dicts."""


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden global {module}.{name}")


def _check(value: Any, where: str) -> None:
    """Only arrays of numbers, lists, dicts with string keys, strings and numbers may come out."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise UnsafePickleError(f"{where}: array of dtype {value.dtype} (only numeric arrays are read)")
    elif isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise UnsafePickleError(f"{where}: key of type {type(k).__name__}")
            _check(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check(v, f"{where}[{i}]")
    elif not isinstance(value, (str, int, float, bool, np.generic)) and value is not None:
        raise UnsafePickleError(f"{where}: value of type {type(value).__name__}")


def load_feature_pickle(path: str | Path) -> Any:
    """The pickle's content if it holds only numeric numpy arrays, lists and dicts; else one-line error."""
    path = Path(path)
    try:
        value = _ArraysOnly(io.BytesIO(path.read_bytes())).load()
    except pickle.UnpicklingError as exc:
        raise UnsafePickleError(f"{path}: refused to unpickle ({exc}); only numpy arrays, lists and dicts are "
                                "read from pickles") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise UserError(f"{path}: not a readable feature pickle ({type(exc).__name__}: {exc})") from None
    _check(value, path.name)
    return value
