"""The tensors an optimizer keeps between steps, under one key scheme."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from torch import Tensor


def cache_key(kind: str, like: Tensor, *parts: Hashable) -> tuple:
    """What an entry is, where it lives (the device and dtype of ``like``), what it depends on."""
    return (kind, like.device, like.dtype, parts)


def cached(cache: dict | None, kind: str, like: Tensor, parts: tuple, build: Callable) -> Any:
    """The entry under :func:`cache_key`, built by ``build()`` the first time (or every
    time without a cache)."""
    if cache is None:
        return build()
    key = cache_key(kind, like, *parts)
    value = cache.get(key)
    if value is None:
        value = build()
        cache[key] = value
    return value


class BoundedCache:
    """The optimizer's reusable tensors, least recently used first out.

    The update keeps a few tensors between steps under :func:`cache_key` keys:
    a scratch buffer per (device, dtype), and per bucket the row-to-tensor
    index and the projection thresholds, keyed by the bucket's shapes. When the
    set of parameters with a gradient changes from step to step, new keys keep
    appearing; the oldest entries are dropped once there are more than
    ``capacity`` (a rebuilt entry costs one small host-to-device copy).
    :meth:`fit` sizes the capacity to the number of buckets of the current
    step, so a stable model never evicts what it uses.
    """

    ENTRIES_PER_BUCKET = 3  # index, thresholds and a share of the scratch buffers
    MIN_CAPACITY = 16

    def __init__(self) -> None:
        self._entries: OrderedDict = OrderedDict()
        self.capacity = self.MIN_CAPACITY

    def fit(self, n_buckets: int) -> None:
        """Room for ``n_buckets`` buckets' entries (and never less than MIN_CAPACITY)."""
        self.capacity = max(self.MIN_CAPACITY, self.ENTRIES_PER_BUCKET * n_buckets)
        self._evict()

    def _evict(self) -> None:
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __contains__(self, key) -> bool:
        return key in self._entries

    def __getitem__(self, key):
        self._entries.move_to_end(key)
        return self._entries[key]

    def get(self, key, default=None):
        return self[key] if key in self._entries else default

    def __setitem__(self, key, value) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        self._evict()

    def __len__(self) -> int:
        return len(self._entries)

    def values(self):
        return self._entries.values()
