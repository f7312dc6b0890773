"""One model lifecycle for the congruence head and the engagement model, on a real store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from congruence.core.errors import ModelMismatch
from congruence.core.settings import Settings
from congruence.engagement import checkpoint as engagement
from congruence.store.records import Store
from congruence.training import deploy, lifecycle
from congruence.training.lifecycle import ENGAGEMENT, HEAD, ModelKind

KINDS = pytest.mark.parametrize("kind", [HEAD, ENGAGEMENT], ids=["head", "engagement"])
# the kind's own entry point, with its own loader and checks
ACTIVE = {HEAD.name: deploy.load_active, ENGAGEMENT.name: engagement.load_active}


def _never(path: Path) -> object:
    raise AssertionError(f"nothing to load, yet asked to read {path}")


@KINDS
def test_nothing_in_service_is_none(settings: Settings, kind: ModelKind) -> None:
    with Store.open(settings) as store:
        assert lifecycle.active_version(store, kind) is None
        assert lifecycle.load_active(settings, store, kind, _never) is None
        assert ACTIVE[kind.name](settings, store) is None


@KINDS
def test_a_missing_checkpoint_is_a_mismatch_naming_the_path(settings: Settings, kind: ModelKind) -> None:
    path = settings.models_dir / kind.folder / "v0.pt"
    want = {
        HEAD.name: f"the active congruence head v0 has no checkpoint at {path}; retrain with `congruence train`",
        ENGAGEMENT.name: f"the engagement model v0 has no checkpoint at {path}; run `congruence engagement train`",
    }
    with Store.open(settings) as store:
        store.set_meta(kind.active_key, "v0")
        with pytest.raises(ModelMismatch) as e:
            ACTIVE[kind.name](settings, store)
    assert str(e.value) == want[kind.name]


@KINDS
def test_an_unreadable_checkpoint_is_a_mismatch_naming_the_path(settings: Settings, kind: ModelKind) -> None:
    path = lifecycle.checkpoint_path(settings, kind, "v1")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with Store.open(settings) as store:
        store.set_meta(kind.active_key, "v1")
        with pytest.raises(ModelMismatch) as e:
            ACTIVE[kind.name](settings, store)
    assert str(e.value).startswith(f"the active {kind.name} v1 cannot be read from {path} (")
    assert str(e.value).endswith(f"); {kind.retrain}")


def test_a_loaders_own_mismatch_passes_through(settings: Settings) -> None:
    path = engagement.checkpoint_path(settings, "old")
    lifecycle.save_atomic({"format": "congruence-engagement/1"}, path)
    with Store.open(settings) as store:
        store.set_meta(ENGAGEMENT.active_key, "old")
        with pytest.raises(ModelMismatch) as e:
            engagement.load_active(settings, store)
    assert str(e.value) == (
        f"{path}: engagement model of an older format (congruence-engagement/1); "
        "run `congruence engagement train` again"
    )


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "models" / "v.pt"
    lifecycle.save_atomic({"format": "x", "w": torch.ones(2)}, path)
    assert [p.name for p in path.parent.iterdir()] == ["v.pt"]
    assert torch.load(path, weights_only=True)["format"] == "x"

    def half_written(obj: object, f: Path) -> None:
        Path(f).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(OSError, match="disk full"):
        lifecycle.save_atomic({"format": "y"}, path)
    assert [p.name for p in path.parent.iterdir()] == ["v.pt"]
    assert torch.load(path, weights_only=True)["format"] == "x"  # the previous checkpoint is untouched


def test_version_is_time_and_weights() -> None:
    state = {"b": torch.arange(3.0), "a": torch.ones(2, 2).t()}
    version = lifecycle.new_version(state)
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{12}", version)
    assert version.endswith(lifecycle.weights_hash({k: v.contiguous() for k, v in reversed(state.items())}))
    assert lifecycle.weights_hash(state) != lifecycle.weights_hash({**state, "b": torch.zeros(3)})


def test_activate_keeps_the_previous_head_only(settings: Settings) -> None:
    with Store.open(settings) as store:
        assert lifecycle.activate(store, HEAD, "h1") is None
        assert lifecycle.activate(store, HEAD, "h2") == "h1"
        assert lifecycle.activate(store, HEAD, "h2") is None
        assert lifecycle.activate(store, ENGAGEMENT, "e1") is None
        assert lifecycle.activate(store, ENGAGEMENT, "e2") == "e1"
        meta = store.meta()
    assert (meta["head_version"], meta["head_previous"], meta["engagement_version"]) == ("h2", "h1", "e2")
    assert not any(k.startswith("engagement_") and k != "engagement_version" for k in meta)
