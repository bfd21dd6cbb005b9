// The service page: upload (with progress), the job list with live stage progress, results of finished jobs.
"use strict";
const token = new URLSearchParams(location.search).get("token");
const auth = token ? { Authorization: "Bearer " + token } : {};
const withToken = (url) => (token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url);
const $ = (id) => document.getElementById(id);

function say(text) { $("message").textContent = text || ""; }

function upload(file) {
  const form = new FormData($("settings"));
  for (const box of ["isolate", "splat"]) form.set(box, $("settings").elements[box].checked ? "true" : "false");
  if (!form.get("marker_size")) form.delete("marker_size");
  form.set("file", file, file.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/jobs");
  if (token) xhr.setRequestHeader("Authorization", "Bearer " + token);
  $("upload").hidden = false;
  say("");
  xhr.upload.onprogress = (e) => {
    if (!e.lengthComputable) return;
    $("upload-bar").value = e.loaded / e.total;
    $("upload-text").textContent = `uploading ${file.name}: ${Math.round((100 * e.loaded) / e.total)} %`;
  };
  xhr.onload = () => {
    $("upload").hidden = true;
    if (xhr.status === 201) { say(""); refresh(); return; }
    let detail = xhr.statusText;
    try { detail = JSON.parse(xhr.responseText).detail; } catch (e) { /* not JSON */ }
    say(`upload refused: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  };
  xhr.onerror = () => { $("upload").hidden = true; say("upload failed: the server could not be reached"); };
  xhr.send(form);
}

function cell(row, html) { const td = document.createElement("td"); td.innerHTML = html; row.appendChild(td); return td; }
function esc(s) { return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }

function render(jobs) {
  const body = $("jobs").querySelector("tbody");
  body.textContent = "";
  $("empty").hidden = jobs.length > 0;
  for (const j of jobs) {
    const tr = document.createElement("tr");
    tr.dataset.id = j.id;
    tr.dataset.state = j.state;
    cell(tr, esc(j.name) + `<div class="stages">${esc(j.settings.preset)} preset, ${esc(j.input)}</div>`);
    cell(tr, `<span class="state-${esc(j.state)}">${esc(j.state)}</span>` + (j.error ? `<div class="stages">${esc(j.error)}</div>` : ""));
    const p = j.progress;
    const stages = Object.entries(p.stages).map(([k, v]) => `${k}: ${v}`).join(", ");
    const eta = p.eta_s != null ? ` &middot; about ${Math.max(1, Math.round(p.eta_s / 60))} min left` : "";
    cell(tr, `<progress max="1" value="${p.share}"></progress> ${Math.round(100 * p.share)} %${eta}<div class="stages">${esc(stages)}</div>`);
    const links = [];
    if (j.page) links.push(`<a class="page" href="${esc(withToken(j.page))}" target="_blank">model page</a>`);
    if (j.report) links.push(`<a href="${esc(withToken(j.report))}" target="_blank">report</a>`);
    for (const f of j.downloads) links.push(`<a class="download" href="${esc(withToken(`/api/jobs/${j.id}/files/${f}`))}">${esc(f)}</a>`);
    cell(tr, links.join(" &middot; "));
    const act = cell(tr, "");
    const btn = document.createElement("button");
    const active = j.state === "queued" || j.state === "running";
    btn.textContent = active ? "cancel" : "delete";
    btn.onclick = async () => {
      await fetch(`/api/jobs/${j.id}` + (active ? "/cancel" : ""), { method: active ? "POST" : "DELETE", headers: auth });
      refresh();
    };
    act.appendChild(btn);
    body.appendChild(tr);
  }
}

async function refresh() {
  try {
    const r = await fetch("/api/jobs", { headers: auth });
    if (!r.ok) { say(r.status === 401 ? "this server needs its token: open the address it printed (…/?token=…)" : `the server answered ${r.status}`); return; }
    render(await r.json());
    document.body.dataset.ready = "1";
  } catch (e) { say("the server could not be reached"); }
}

window.addEventListener("DOMContentLoaded", () => {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", () => { if ($("file").files.length) upload($("file").files[0]); });
  refresh();
  setInterval(refresh, 1500);
});
