"""Typed config: presets, --set parsing and validation."""

import dataclasses

import pytest

from vid2model.config import PRESETS, STAGE_CONFIGS, build_config, config_to_dict
from vid2model.errors import UserError


def test_presets_build_and_differ():
    fast, default, quality = (build_config(p) for p in ("fast", "default", "quality"))
    assert fast.dense.max_side < default.dense.max_side < quality.dense.max_side
    assert fast.splat.iterations < default.splat.iterations < quality.splat.iterations
    for name in PRESETS:
        cfg = build_config(name)
        for stage in STAGE_CONFIGS:
            assert dataclasses.is_dataclass(cfg.for_stage(stage))


def test_set_overrides_with_types():
    cfg = build_config("fast", sets=["dense.max_side=800", "mesh.isolate=true", "export.formats=glb,fbx",
                                     "sfm.marker_size=0.15"])
    assert cfg.dense.max_side == 800 and cfg.mesh.isolate is True
    assert cfg.export.formats == ("glb", "fbx") and cfg.sfm.marker_size == pytest.approx(0.15)
    assert config_to_dict(cfg.export)["formats"] == ["glb", "fbx"]


def test_configs_are_frozen():
    cfg = build_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.dense.max_side = 1  # type: ignore[misc]


@pytest.mark.parametrize("bad", ["nostage", "dense.max_side", "foo.bar=1", "dense.max_side=x", "mesh.isolate=maybe"])
def test_bad_sets_raise_user_error(bad):
    with pytest.raises(UserError):
        build_config(sets=[bad])


def test_unknown_preset():
    with pytest.raises(UserError, match="unknown preset"):
        build_config("ultra")
