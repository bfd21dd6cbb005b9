// Shared by the site's bundled views: the status line, the canvas size, and the base64 copies of large files that let pages
// opened from disk (file://, where fetch is refused) still read them.

export function statusLine(el) {
  return (html) => { el.innerHTML = html || ""; el.hidden = !html; };
}

// The bytes of NAME from its embedded copy NAME.js (a script that sets window.V2M_EMBED[NAME] to base64).
export function loadEmbedded(name) {
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = name + ".js";
    s.onload = () => {
      const b64 = (window.V2M_EMBED || {})[name];
      if (!b64) { reject(new Error("no embedded copy of " + name)); return; }
      const bin = atob(b64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      delete window.V2M_EMBED[name];
      resolve(bytes);
    };
    s.onerror = () => reject(new Error("cannot read " + name + ".js"));
    document.head.appendChild(s);
  });
}

// Keep a three.js renderer and perspective camera at the canvas's displayed size (now and as it changes).
export function followCanvasSize(renderer, camera, canvas) {
  function resize() {
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
  }
  new ResizeObserver(resize).observe(canvas);
  resize();
}
