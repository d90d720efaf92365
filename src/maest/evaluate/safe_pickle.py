"""Load Python-2 era pickles (MSD split files) without executing code from the file.

Plain ``pickle.load`` on a downloaded file runs whatever callables it names. This unpickler admits
only built-in containers, strings, bytes, numbers and numpy arrays/dtypes/scalars, under both
numpy 1's ``numpy.core`` and numpy 2's ``numpy._core`` module names.
"""

from __future__ import annotations

import builtins
import codecs
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a callable outside the allow-list; it was refused, nothing was executed."""


def _numpy_multiarray():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray
    return multiarray


_MA = _numpy_multiarray()
_NUMPY = {"_reconstruct": _MA._reconstruct, "scalar": _MA.scalar}
ALLOWED: dict[tuple[str, str], Any] = {
    **{(module, name): obj for module in ("numpy.core.multiarray", "numpy._core.multiarray") for name, obj in _NUMPY.items()},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 writes bytes in protocol <= 2 pickles as _codecs.encode(text, "latin1").
    ("_codecs", "encode"): codecs.encode,
    **{
        (module, name): getattr(builtins, name)
        for module in ("builtins", "__builtin__")  # Python 3 and Python 2 spellings
        for name in ("set", "frozenset", "list", "dict", "tuple", "bytearray", "complex", "int", "float", "str", "bytes", "bool")
    },
    ("__builtin__", "long"): int,
    ("__builtin__", "unicode"): str,
}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` resolves only :data:`ALLOWED` names."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {module}.{name} from a pickle: only built-in containers, strings, "
                "numbers and numpy arrays are allowed"
            ) from None


def safe_loads(data: bytes, encoding: str = "latin1") -> Any:
    """Unpickle ``data`` through :class:`RestrictedUnpickler` (``latin1`` reads py2 ``str``)."""
    return RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()


def safe_load(path: str | os.PathLike, encoding: str = "latin1") -> Any:
    """Unpickle a file through :class:`RestrictedUnpickler`."""
    return safe_loads(Path(path).read_bytes(), encoding=encoding)


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """``np.load`` for ``.npy`` files; object arrays (pickled payload) go through the restricted unpickler."""
    path = Path(path)
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" not in str(error):
            raise
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(f)
        else:
            np.lib.format.read_array_header_2_0(f)
        return np.asarray(RestrictedUnpickler(f, encoding="latin1").load())
