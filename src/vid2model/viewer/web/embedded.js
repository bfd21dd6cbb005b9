// Shared by the site's bundled views: the status line, and the base64 copies of large files that let pages
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
