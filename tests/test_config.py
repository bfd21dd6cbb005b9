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


@pytest.mark.parametrize("item,valid", [("sfm.mapper=globl", "auto, global, incremental"),
                                        ("sfm.matcher=bogus", "auto, sequential, exhaustive"),
                                        ("sfm.features=sfit", "sift, xfeat, aliked"),
                                        ("sfm.camera_model=opencv", "OPENCV"),
                                        ("dense.backend=gpu", "auto, cpu, colmap_cuda"),
                                        ("dense.device=gpu", "auto, cpu, cuda"),
                                        ("mesh.method=tsfd", "poisson, tsdf"),
                                        ("splat.device=metal", "auto, cpu, cuda")])
def test_a_typo_in_a_choice_names_the_valid_values(item, valid):
    key, value = item.split("=")
    with pytest.raises(UserError, match=f"{key} cannot be '{value}'; choose one of .*{valid}"):
        build_config(sets=[item])


def test_choices_are_checked_however_a_config_is_built():
    from vid2model.config import MeshConfig, SfmConfig

    with pytest.raises(UserError, match="sfm.mapper"):
        SfmConfig(mapper="bogus")
    with pytest.raises(UserError, match="mesh.method"):
        dataclasses.replace(MeshConfig(), method="marching")
    assert build_config(sets=["sfm.mapper=global", "mesh.method=tsdf"]).sfm.mapper == "global"


def test_a_typo_stops_the_run_before_ingest(tmp_path, capsys):
    from vid2model.cli import main

    video = tmp_path / "v.mp4"
    video.write_bytes(b"not looked at")
    assert main(["run", str(video), "-o", str(tmp_path / "ws"), "-q", "--set", "sfm.mapper=globl"]) == 2
    assert "choose one of auto, global, incremental" in capsys.readouterr().err
    assert not (tmp_path / "ws" / "ingest").exists()


@pytest.mark.parametrize("item,want", [("ingest.jpeg_quality=500", "from 1 to 100"),
                                       ("dense.max_side=-5", "at least 64"), ("ingest.analysis_side=-1", "at least 64"),
                                       ("ingest.max_side=0", "at least 64"),
                                       ("sfm.min_verified_share=2.5", "from 0 to 1"),
                                       ("splat.iterations=0", "at least 1"), ("splat.sh_degree=4", "from 0 to 3"),
                                       ("mesh.hull_min_missed=-0.1", "from 0 to 1")])
def test_impossible_values_are_refused_with_the_range(item, want):
    key, value = item.split("=")
    with pytest.raises(UserError, match=f"{key} cannot be {value}; it must be {want}"):
        build_config(sets=[item])
