"""Fixtures of the training tests: the synthetic data of ``training_synthetic``."""

from __future__ import annotations

import pytest

from congruence.store.postsets import PostSets

from .training_synthetic import make_postsets


@pytest.fixture(scope="session")
def synthetic() -> tuple[PostSets, list[tuple[str, str]]]:
    return make_postsets()
