"""``vid2model batch --ray`` on a real local Ray cluster: a head and a second node started with Ray's own
commands on this machine's loopback. Jobs spread over both; a job whose node is killed runs again on the
other and finishes, with the cameras a local run gives."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason="the cluster tests need the 'cluster' extra (pip install 'vid2model[cluster]')")

RAY = Path(sys.executable).parent / "ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """(address, the second node's node-manager port): a head and a worker node, one CPU each."""
    import ray

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    port, node2 = _free_port(), _free_port()
    common = ["--num-cpus=1", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    subprocess.run([str(RAY), "start", "--head", f"--port={port}", "--include-dashboard=false", *common], env=env,
                   check=True, capture_output=True, timeout=180)
    try:
        subprocess.run([str(RAY), "start", f"--address=127.0.0.1:{port}", f"--node-manager-port={node2}", *common],
                       env=env, check=True, capture_output=True, timeout=180)
        address = f"127.0.0.1:{port}"
        ray.init(address=address, log_to_driver=False)
        t0 = time.time()
        while sum(n["Alive"] for n in ray.nodes()) < 2 and time.time() - t0 < 60:
            time.sleep(0.5)
        assert sum(n["Alive"] for n in ray.nodes()) == 2
        yield address, node2
    finally:
        ray.shutdown()
        subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)


def _catalogue(tmp_path: Path, video: Path, names: list[str]) -> Path:
    cat = tmp_path / "catalogue.csv"
    cat.write_text("input,name\n" + "".join(f"{video},{n}\n" for n in names))
    return cat


def test_a_batch_spreads_over_both_nodes(cluster, tmp_path, synth_orbit):
    from vid2model.cli import main

    address, _ = cluster
    out = tmp_path / "out"
    cat = _catalogue(tmp_path, synth_orbit.video_path, [f"item{i}" for i in range(4)])
    assert main(["batch", str(cat), "-o", str(out), "--stages", "ingest", "--ray", address, "-q"]) == 0
    res = json.loads((out / "batch.json").read_text())["results"]
    assert [r["status"] for r in res] == ["done"] * 4
    assert len({r["node"] for r in res}) == 2, [r["node"] for r in res]


def _node_processes(node_port: int) -> list:
    """The raylet of the node with this node-manager port and every process under it (its workers)."""
    import psutil

    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "raylet" in cmd and f"--node_manager_port={node_port}" in cmd:
            return [p, *p.children(recursive=True)]
    return []


@pytest.mark.slow  # failed once in a full suite on a machine loaded by other work (passed in the two before)
def test_a_job_on_a_killed_node_runs_again_elsewhere_and_finishes(cluster, tmp_path, synth_orbit):
    import ray

    from vid2model.cli import main
    from vid2model.io.colmap import load_views

    address, node2 = cluster
    out = tmp_path / "out"
    cat = _catalogue(tmp_path, synth_orbit.video_path, ["a", "b"])
    rc: list[int] = []
    t = threading.Thread(target=lambda: rc.append(main(["batch", str(cat), "-o", str(out), "--stages", "ingest,sfm",
                                                         "--ray", address, "-q"])))
    t.start()
    # the job the second node runs: its running stage's process (the manifest's pid) is one of that node's workers
    victim, t0 = None, time.time()
    while victim is None and time.time() - t0 < 300:
        pids = {p.pid for p in _node_processes(node2)}
        for name in ("a", "b"):
            m = out / name / "manifest.json"
            stage = json.loads(m.read_text())["stages"].get("sfm", {}) if m.exists() else {}
            if stage.get("status") == "running" and stage.get("pid") in pids:
                victim = name
        time.sleep(0.3)
    assert victim is not None, "no job ran its camera stage on the second node"
    for p in _node_processes(node2):
        p.send_signal(signal.SIGKILL)
    t.join(900)
    assert rc == [0]
    res = {r["name"]: r for r in json.loads((out / "batch.json").read_text())["results"]}
    head = next(n["NodeID"] for n in ray.nodes() if n["Alive"])
    assert res[victim]["status"] == "done" and res[victim]["node"] == head
    # the same cameras as a local run of the same video
    local = tmp_path / "local"
    assert main(["ingest", str(synth_orbit.video_path), "-o", str(local), "-q"]) == 0
    assert main(["sfm", str(local), "-q"]) == 0
    a = {v.name: v.cam_to_world for v in load_views(out / victim / "sparse" / "0")}
    b = {v.name: v.cam_to_world for v in load_views(local / "sparse" / "0")}
    assert a.keys() == b.keys()
    assert max(np.abs(a[k] - b[k]).max() for k in a) < 1e-6
    shutil.rmtree(out, ignore_errors=True)


@pytest.mark.slow
def test_the_service_runs_its_jobs_as_ray_tasks(cluster, tmp_path, synth_orbit):
    import psutil

    from test_service import Server, upload, request

    address, _ = cluster
    s = Server(tmp_path / "data", "--ray", address, "--workers", "2")
    try:
        video = synth_orbit.video_path.read_bytes()
        ids = [json.loads(upload(s.url, f"v{i}.mp4", video, preset="fast", splat="false", formats="glb")[2])["id"]
               for i in range(2)]
        parents, t0 = set(), time.time()
        while time.time() - t0 < 600:
            jobs = [json.loads(request(f"{s.url}/api/jobs/{i}")[2]) for i in ids]
            for i in ids:
                m = tmp_path / "data" / "jobs" / i / "ws" / "manifest.json"
                stages = json.loads(m.read_text())["stages"] if m.exists() else {}
                pid = next((v.get("pid") for v in stages.values() if v.get("status") == "running"), None)
                if pid and psutil.pid_exists(pid):
                    parents.add(" ".join(psutil.Process(pid).parent().cmdline()))
            if all(j["state"] in ("done", "failed", "cancelled") for j in jobs):
                break
            time.sleep(0.5)
        assert [j["state"] for j in jobs] == ["done", "done"], jobs
        assert parents and all("ray" in p for p in parents), parents  # each run is a Ray worker's child
    finally:
        s.kill()
