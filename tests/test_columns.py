"""The compact string columns of the serving account table behave as lists of str."""

from __future__ import annotations

import numpy as np
import pytest

from congruence.store.columns import CodeColumn, StrColumn, StrColumnBuilder

WORDS = ["anna_runs", "", "zoë/ski#1", "\u202ertl", "a\u0301", "x" * 300, "anna_runs"]


def test_str_column_round_trips_unicode_and_empty_strings() -> None:
    b = StrColumnBuilder()
    b.extend(WORDS[:3]).extend([]).extend(WORDS[3:])
    col = b.build()
    assert len(col) == len(WORDS) and list(col) == WORDS and col == WORDS
    assert [col[i] for i in range(len(WORDS))] == WORDS and col[-1] == WORDS[-1] and col[1:3] == WORDS[1:3]
    assert col.data.count(b"anna_runs") == 2  # one buffer, no per-string objects kept
    with pytest.raises(IndexError):
        col[len(WORDS)]
    assert StrColumn.of([]) == [] and len(StrColumn.of([])) == 0


def test_code_column_stores_each_distinct_value_once() -> None:
    cats = ["fitness", "food", "fitness", "", "food", "fitness"]
    col = CodeColumn.of(cats)
    assert list(col) == cats and col == cats and col[2:4] == cats[2:4] and col[-1] == "fitness"
    assert col.names == ["fitness", "food", ""]
    np.testing.assert_array_equal(col.codes, [0, 1, 0, 2, 1, 0])
