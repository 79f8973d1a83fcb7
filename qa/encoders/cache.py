"""A thread-safe LRU of vectors by text, so that a text is encoded once while it stays recent."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np


class VectorCache:
    """The last ``size`` vectors by text. :meth:`get` encodes only the texts it does not hold (one
    call for all of them, outside the lock) and returns read-only vectors in the order asked."""

    def __init__(self, size: int):
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray]) -> list[np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for t in texts:
                v = self._vectors.get(t)
                if v is not None:
                    self._vectors.move_to_end(t)
                    found[t] = v
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            got = encode(missing)
            with self._lock:
                for t, v in zip(missing, got):
                    v.setflags(write=False)
                    found[t] = self._vectors[t] = v
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return [found[t] for t in texts]
