// Product view: points <model-viewer> at the GLB. On pages opened from disk (file://) browsers refuse
// to fetch files, so the GLB is taken from its embedded copy (model.glb.js) instead.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("v2m-config").textContent);
  var status = document.getElementById("status");
  var mv = document.getElementById("product");

  function say(html) { status.innerHTML = html || ""; status.hidden = !html; }

  function loadEmbedded(name) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.src = name + ".js";
      s.onload = function () {
        var b64 = (window.V2M_EMBED || {})[name];
        if (!b64) { reject(new Error("no embedded copy of " + name)); return; }
        var bin = atob(b64), bytes = new Uint8Array(bin.length);
        for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        delete window.V2M_EMBED[name];
        resolve(bytes);
      };
      s.onerror = function () { reject(new Error("cannot read " + name + ".js")); };
      document.head.appendChild(s);
    });
  }

  var servedHint = "Serve this folder instead of opening it from disk, e.g. " +
    "<code>python3 -m http.server -d SITE 8000</code>, then open <code>http://127.0.0.1:8000</code>.";

  if (!mv) { return; }
  mv.addEventListener("load", function () { say(""); document.body.dataset.loaded = "1"; });
  mv.addEventListener("error", function (ev) {
    document.body.dataset.error = "1";
    say("The 3D model could not be loaded" + (location.protocol === "file:" ? ". " + servedHint : "."));
  });
  function show(src) {
    if (location.protocol === "file:" && cfg.embedded.indexOf(src) >= 0) {
      loadEmbedded(src).then(function (bytes) {
        mv.src = URL.createObjectURL(new Blob([bytes], { type: "model/gltf-binary" }));
      }).catch(function () { say("The 3D model could not be loaded. " + servedHint); });
    } else {
      mv.src = src;
    }
  }
  // the light copy's geometry is meshopt-compressed: model-viewer decodes it with the decoder it bundles once
  // meshoptDecoderLocation names a script that loads, so an empty inline one does (nothing is fetched)
  var MV = customElements.get("model-viewer");
  if (MV && !MV.meshoptDecoderLocation) { MV.meshoptDecoderLocation = "data:text/javascript,"; }
  show(cfg.model);
  // the page opens on the light copy; the full model is fetched only when asked for
  var full = document.getElementById("full-detail");
  if (full && cfg.full) {
    full.textContent = "Full detail (" + (cfg.full.bytes / 1e6).toFixed(1) + " MB)";
    full.hidden = false;
    full.addEventListener("click", function () {
      full.disabled = true;
      full.textContent = "Loading full detail...";
      mv.addEventListener("load", function () { full.hidden = true; document.body.dataset.full = "1"; },
                          { once: true });
      show(cfg.full.file);
    });
  }
})();
