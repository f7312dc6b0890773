"""Compact string columns for the serving process's account table.

A Python list of a million short ``str`` objects costs ~65 bytes an entry, and building it
from a million fetched rows left ~250 MB of fragmented heap behind (measured: the 1M-row
table cost 361 MB of a serving process). These hold the same strings in one UTF-8 buffer
with offsets (~20 bytes an entry), or as integer codes into a list of distinct values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np


class StrColumn(Sequence[str]):
    """n strings in one UTF-8 buffer: string i is ``data[offsets[i]:offsets[i + 1]]``."""

    def __init__(self, data: bytes, offsets: np.ndarray):
        self.data, self.offsets = data, np.asarray(offsets, np.int64)

    @classmethod
    def of(cls, strings: Iterable[str]) -> StrColumn:
        return StrColumnBuilder().extend(strings).build()

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        j = int(i) + n if int(i) < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError("StrColumn index out of range")
        return self.data[self.offsets[j] : self.offsets[j + 1]].decode()

    def __iter__(self) -> Iterator[str]:
        data, off = self.data, self.offsets.tolist()
        return (data[a:b].decode() for a, b in zip(off[:-1], off[1:], strict=True))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Sequence)
            and len(other) == len(self)
            and all(a == b for a, b in zip(self, other, strict=True))
        )

    __hash__ = None  # type: ignore[assignment]


class StrColumnBuilder:
    """Appends strings in chunks (bounded memory while reading a big table)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.lengths: list[np.ndarray] = []

    def extend(self, strings: Iterable[str]) -> StrColumnBuilder:
        enc = [s.encode() for s in strings]
        self.parts.append(b"".join(enc))
        self.lengths.append(np.fromiter((len(b) for b in enc), np.int64, count=len(enc)))
        return self

    def build(self) -> StrColumn:
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int64)
        return StrColumn(b"".join(self.parts), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


class CodeColumn(Sequence[str]):
    """n strings drawn from few distinct ``names``: row i is ``names[codes[i]]``."""

    def __init__(self, codes: np.ndarray, names: Sequence[str]):
        self.codes, self.names = np.asarray(codes, np.int32), list(names)

    @classmethod
    def of(cls, strings: Iterable[str]) -> CodeColumn:
        index: dict[str, int] = {}
        codes = np.array([index.setdefault(s, len(index)) for s in strings], np.int32)
        return cls(codes, list(index))

    def __len__(self) -> int:
        return len(self.codes)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self.names[c] for c in self.codes[i].tolist()]
        return self.names[int(self.codes[i])]

    def __iter__(self) -> Iterator[str]:
        names = self.names
        return (names[c] for c in self.codes.tolist())

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Sequence)
            and len(other) == len(self)
            and all(a == b for a, b in zip(self, other, strict=True))
        )

    __hash__ = None  # type: ignore[assignment]
