// Tour view: walk through a walk-through's textured mesh, first person, with the floor plan as a map
// (three.js, bundled by esbuild into vendor/tour-view.js at publish time). Positions are kept in vid2model's
// frame (+Z up, the plan's frame); the GLB is +Y up: (x, y, z) -> (x, z, -y), times the export's scale.
import * as THREE from "three";
import { followCanvasSize, loadEmbedded, statusLine } from "./embedded.js";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { MeshoptDecoder } from "three/addons/libs/meshopt_decoder.module.js";

const cfg = JSON.parse(document.getElementById("v2m-config").textContent);
const statusEl = document.getElementById("status");
const canvas = document.getElementById("tour-canvas");
const s = cfg.scale;
const toGl = (x, y, z) => new THREE.Vector3(x * s, z * s, -y * s);

const say = statusLine(statusEl);

// the map: the plan's outline and the viewer as a dot with a heading line, in an SVG beside the view
function makeMap() {
  const svg = document.getElementById("map");
  const c = cfg.plan ? cfg.plan.corners : null;
  if (!svg || !c) return () => {};
  const xs = c.map((p) => p[0]), ys = c.map((p) => p[1]);
  const x0 = Math.min(...xs), y1 = Math.max(...ys);
  const span = Math.max(Math.max(...xs) - x0, y1 - Math.min(...ys), 1e-9);
  const k = 150 / span;
  const at = (x, y) => [5 + (x - x0) * k, 5 + (y1 - y) * k];  // SVG's y runs down
  const ns = "http://www.w3.org/2000/svg";
  const poly = document.createElementNS(ns, "polygon");
  poly.setAttribute("points", c.map((p) => at(p[0], p[1]).join(",")).join(" "));
  poly.setAttribute("class", "room");
  const dot = document.createElementNS(ns, "circle");
  dot.setAttribute("r", "5");
  dot.setAttribute("id", "map-me");
  // doors and windows: wall n runs from corner n to corner n + 1 (1-based), an opening starts `from` along it
  const gaps = (cfg.plan.openings || []).map((o) => {
    const a = c[o.wall - 1], b = c[o.wall % c.length];
    const len = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1;
    const dx = (b[0] - a[0]) / len, dy = (b[1] - a[1]) / len;
    const p = at(a[0] + o.from * dx, a[1] + o.from * dy);
    const q = at(a[0] + (o.from + o.width) * dx, a[1] + (o.from + o.width) * dy);
    const gap = document.createElementNS(ns, "line");
    gap.setAttribute("class", `opening ${o.kind}`);
    gap.setAttribute("x1", p[0].toFixed(1)); gap.setAttribute("y1", p[1].toFixed(1));
    gap.setAttribute("x2", q[0].toFixed(1)); gap.setAttribute("y2", q[1].toFixed(1));
    return gap;
  });
  const head = document.createElementNS(ns, "line");
  head.setAttribute("class", "heading");
  svg.append(poly, ...gaps, head, dot);
  return (st) => {
    const [u, v] = at(st.x, st.y);
    dot.setAttribute("cx", u.toFixed(1));
    dot.setAttribute("cy", v.toFixed(1));
    head.setAttribute("x1", u.toFixed(1));
    head.setAttribute("y1", v.toFixed(1));
    head.setAttribute("x2", (u + 14 * Math.cos(st.yaw)).toFixed(1));
    head.setAttribute("y2", (v - 14 * Math.sin(st.yaw)).toFixed(1));
  };
}

async function main() {
  const renderer = new THREE.WebGLRenderer({ canvas, antialias: true });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(cfg.background);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x888888, 2.5));
  const camera = new THREE.PerspectiveCamera(70, 1, 0.05 * s, 200 * s);
  followCanvasSize(renderer, camera, canvas);

  const buf = location.protocol === "file:" ? (await loadEmbedded(cfg.model)).buffer
    : await (await fetch(cfg.model)).arrayBuffer();
  // the site's light copy of the model is meshopt-compressed (EXT_meshopt_compression)
  const gltf = await new GLTFLoader().setMeshoptDecoder(MeshoptDecoder).parseAsync(buf, "");
  scene.add(gltf.scene);

  const st = { x: cfg.start.position[0], y: cfg.start.position[1], z: cfg.start.position[2], yaw: cfg.start.yaw,
               pitch: 0 };
  const keys = new Set();
  const speed = cfg.speed;  // workspace units per second
  window.addEventListener("keydown", (e) => { keys.add(e.key.toLowerCase()); });
  window.addEventListener("keyup", (e) => { keys.delete(e.key.toLowerCase()); });
  let drag = null;
  canvas.addEventListener("pointerdown", (e) => { drag = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointerup", () => { drag = null; });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    st.yaw -= (e.clientX - drag[0]) * 0.005;
    st.pitch = Math.max(-1.2, Math.min(1.2, st.pitch - (e.clientY - drag[1]) * 0.005));
    drag = [e.clientX, e.clientY];
  });
  const drawMap = makeMap();
  window.v2mTour = { state: st, camera };

  // Render on demand (battery, and software GL): only while a key is held, after a drag or a resize
  // Between them the frame loop itself stops: an idle page costs nothing.
  let last = performance.now(), frames = 0, pending = 5, running = false;
  const frame = (now) => {
    const dt = Math.min(0.1, (now - last) / 1000);
    last = now;
    if (keys.size) pending = Math.max(pending, 3);
    if (pending <= 0) { renderer.setAnimationLoop(null); running = false; return; }
    pending--;
    const fwd = (keys.has("w") || keys.has("arrowup") ? 1 : 0) - (keys.has("s") || keys.has("arrowdown") ? 1 : 0);
    const side = (keys.has("d") ? 1 : 0) - (keys.has("a") ? 1 : 0);
    st.yaw += ((keys.has("arrowleft") || keys.has("q") ? 1 : 0) - (keys.has("arrowright") || keys.has("e") ? 1 : 0)) * dt;
    st.x += speed * dt * (fwd * Math.cos(st.yaw) + side * Math.sin(st.yaw));
    st.y += speed * dt * (fwd * Math.sin(st.yaw) - side * Math.cos(st.yaw));
    const d = [Math.cos(st.yaw) * Math.cos(st.pitch), Math.sin(st.yaw) * Math.cos(st.pitch), Math.sin(st.pitch)];
    camera.position.copy(toGl(st.x, st.y, st.z));
    camera.lookAt(toGl(st.x + d[0], st.y + d[1], st.z + d[2]));
    renderer.render(scene, camera);
    drawMap(st);
    if (++frames === 3) { say(""); document.body.dataset.loaded = "1"; }
  };
  const wake = () => {
    pending = Math.max(pending, 3);
    if (!running) { running = true; last = performance.now(); renderer.setAnimationLoop(frame); }
  };
  window.addEventListener("keydown", wake);
  canvas.addEventListener("pointermove", wake);
  new ResizeObserver(wake).observe(canvas);
  wake();
}

main().catch((err) => {
  document.body.dataset.error = "1";
  console.error(err);
  say("The tour could not be shown: " + String(err && err.message || err) + " (this view needs WebGL).");
});
