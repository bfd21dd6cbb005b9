"""Texture where no photo looked: a closed product's underside is completed from the surface around it,
never painted from a view that cannot see it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from helpers_colmap import _write_text_model, look_at
from vid2model.config import TextureConfig
from vid2model.stages import texture
from vid2model.synth.mesh import scene_mesh
from vid2model.synth.render import render
from vid2model.synth.scene import Box, Scene
from vid2model.workspace import Workspace

PAINT = (0.80, 0.35, 0.20)


@pytest.fixture(scope="module")
def textured_box(tmp_path_factory):
    """A plain-painted box standing on a textured floor, filmed by 8 views from above the horizon: its bottom is
    never seen. The workspace holds the views, their frames and the box's closed mesh; texture is run."""
    import pycolmap
    import trimesh
    from PIL import Image

    box = Box((-0.15, -0.1, 0.0), (0.15, 0.1, 0.25))
    scene = Scene(plain_boxes=(box,), plain_color=PAINT, ground_half=2.0, seed=1, center=(0, 0, 0.12), radius=0.3)
    ws = Workspace(tmp_path_factory.mktemp("completion") / "ws")
    ws.create()
    w, h = 200, 150
    K = np.array([[180.0, 0, w / 2], [0, 180.0, h / 2], [0, 0, 1]])
    names, w2c = [], []
    ws.undistorted_dir.mkdir(parents=True, exist_ok=True)
    for i, az in enumerate(np.radians(np.arange(0, 360, 45) + 10)):
        m = np.eye(4)
        m[:3] = look_at((0.9 * np.cos(az), 0.9 * np.sin(az), 0.55), (0, 0, 0.12))
        img = render(scene, K, np.linalg.inv(m), w, h)
        names.append(f"frame_{i:06d}.png")
        Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).save(ws.undistorted_dir / names[-1])
        w2c.append(m)
    txt = ws.dense_dir / "txt"
    _write_text_model(txt, SimpleNamespace(K=K, width=w, height=h), names, np.array(w2c), np.zeros((0, 3)),
                      np.zeros((0, 3)), [])
    rec = pycolmap.Reconstruction(str(txt))
    for d in (ws.dense_sparse_dir, ws.sparse_dir):
        d.mkdir(parents=True, exist_ok=True)
        rec.write(str(d))
    V, F, _ = scene_mesh(Scene(boxes=(box,), ground_half=0.0, radius=0.3), resolution=0.02)
    closed = trimesh.Trimesh(V, F, process=False)
    closed.merge_vertices()
    ws.clean_mesh.parent.mkdir(parents=True, exist_ok=True)
    closed.export(ws.clean_mesh)
    summary = texture.run(ws, TextureConfig(size=512, use_full_res=False))
    from vid2model.runner import Manifest

    m = Manifest(ws)  # as the stage runner records it, for the report
    m.set_stage("texture", status="done", summary=summary)
    m.save()
    return ws, summary


def _texels_by_face_normal(ws: Workspace):
    """The baked OBJ's texel colours [K, 3] (0-255) at each face's centroid, and the faces' normals [K, 3]."""
    import trimesh
    from PIL import Image

    out = ws.texture_files()
    mesh = trimesh.load(out.obj, process=False)
    tex = np.asarray(Image.open(out.png).convert("RGB"), float)
    uv = mesh.visual.uv[mesh.faces].mean(1)
    px = np.clip((uv * [tex.shape[1], -tex.shape[0]] + [0, tex.shape[0]]).astype(int), 0, tex.shape[0] - 1)
    return tex[px[:, 1], px[:, 0]], mesh.face_normals


def test_only_the_unseen_underside_is_completed(textured_box):
    ws, summary = textured_box
    _, normals = _texels_by_face_normal(ws)
    bottom = normals[:, 2] < -0.99
    # every face of the underside, and nothing else (the seen sides and top keep their photos)
    assert summary["faces_completed"] == int(bottom.sum()) > 0
    assert summary["completed_share"] == pytest.approx(0.3 * 0.2 / (2 * (0.06 + 0.075 + 0.05)), rel=0.05)


def test_the_underside_takes_the_colour_of_the_sides_not_the_floor(textured_box):
    ws, _ = textured_box
    col, normals = _texels_by_face_normal(ws)
    bottom = normals[:, 2] < -0.99
    sides = np.abs(normals[:, 2]) < 0.01
    # the sides' paint as lit: the underside is carried over from their lower edges, so its colour lies in
    # their range and, on average, within 10/255 of theirs (the target)
    lo, hi = col[sides].min(0), col[sides].max(0)
    assert np.all(col[bottom] >= lo - 3) and np.all(col[bottom] <= hi + 3)
    assert np.abs(col[bottom].mean(0) - col[sides].mean(0)).mean() <= 10
    # a painted, untextured side: completed texels are as even as the paint (the floor's texture would not be)
    assert col[bottom].std(0).max() < 25


def test_the_report_says_how_much_was_completed(textured_box):
    from vid2model.report import build_report

    ws, summary = textured_box
    build_report(ws)
    findings = ws.read_json(ws.report_json)["coverage"]["findings"]
    said = [f for f in findings if "never seen by any keyframe" in f]
    assert len(said) == 1 and said[0].startswith(f"{100 * summary['completed_share']:.1f} %")
