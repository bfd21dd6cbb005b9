// Splat view: three.js + Spark (bundled by esbuild into vendor/splat-view.js at publish time).
// The world is vid2model's frame: +Z up, so the camera's up vector is +Z.
import * as THREE from "three";
import { followCanvasSize, loadEmbedded, statusLine } from "./embedded.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { SparkRenderer, SplatMesh } from "@sparkjsdev/spark";

const cfg = JSON.parse(document.getElementById("v2m-config").textContent);
const statusEl = document.getElementById("status");
const canvas = document.getElementById("splat-canvas");

const say = statusLine(statusEl);

function framing(mesh) {
  if (cfg.frame) return { center: new THREE.Vector3(...cfg.frame.center), radius: cfg.frame.radius };
  const box = mesh.getBoundingBox(true);
  const sphere = box.getBoundingSphere(new THREE.Sphere());
  return { center: sphere.center, radius: Math.max(sphere.radius * 0.6, 1e-3) };
}

async function main() {
  const s = cfg.splat;
  if (!s) { say("This site has no Gaussian splat."); return; }
  const renderer = new THREE.WebGLRenderer({ canvas, antialias: false });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(cfg.background);
  const camera = new THREE.PerspectiveCamera(50, 1, 0.01, 1000);
  camera.up.set(0, 0, 1);
  scene.add(new SparkRenderer({ renderer }));

  followCanvasSize(renderer, camera, canvas);

  let source;
  if (location.protocol === "file:") {
    if (cfg.embedded.indexOf(s.file) < 0) throw new Error("served-only");
    source = { fileBytes: await loadEmbedded(s.file), fileName: s.file, fileType: s.type };
  } else {
    source = { url: s.file, fileType: s.type };
  }
  const mesh = new SplatMesh(source);
  scene.add(mesh);
  await mesh.initialized;

  const { center, radius } = framing(mesh);
  const az = THREE.MathUtils.degToRad(cfg.view.azimuth_deg);
  const el = THREE.MathUtils.degToRad(cfg.view.elevation_deg);
  const dist = radius * cfg.view.distance;
  camera.near = radius * 0.01;
  camera.far = radius * 200;
  camera.position.set(center.x + dist * Math.cos(el) * Math.cos(az), center.y + dist * Math.cos(el) * Math.sin(az),
                      center.z + dist * Math.sin(el));
  camera.updateProjectionMatrix();
  const controls = new OrbitControls(camera, canvas);
  controls.target.copy(center);
  controls.enableDamping = true;
  controls.update();
  window.v2mSplat = { camera, controls, mesh, numSplats: mesh.numSplats };

  // Render on demand (battery, and software GL): a burst of frames after each change, because Spark sorts
  // the splats for a new viewpoint in a worker and shows the result a few frames later.
  // Between bursts the frame loop itself stops: an idle page costs nothing.
  const BURST = 20;
  let pending = BURST, frames = 0, running = false;
  const frame = () => {
    controls.update();  // may wake the loop again while the damping settles
    if (pending <= 0) { renderer.setAnimationLoop(null); running = false; return; }
    pending--;
    renderer.render(scene, camera);
    if (++frames === 8) { say(""); document.body.dataset.loaded = "1"; }
  };
  const wake = () => {
    pending = BURST;
    if (!running) { running = true; renderer.setAnimationLoop(frame); }
  };
  controls.addEventListener("change", wake);
  canvas.addEventListener("pointerdown", wake);
  canvas.addEventListener("wheel", wake, { passive: true });
  new ResizeObserver(wake).observe(canvas);
  wake();
}

main().catch((err) => {
  document.body.dataset.error = "1";
  console.error(err);
  say(location.protocol === "file:"
    ? "The splat could not be loaded from disk. Serve this folder instead, e.g. " +
      "<code>python3 -m http.server -d SITE 8000</code>, then open <code>http://127.0.0.1:8000/splat.html</code>."
    : "The splat could not be shown: " + String(err && err.message || err) +
      " (this view needs WebGL2).");
});
