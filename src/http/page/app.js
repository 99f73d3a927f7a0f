// lumagate's page. It calls the public API exactly as any client does (same endpoints,
// `Authorization: Bearer <key>`), so what works here works for everyone. Plain JS, no
// build step, no CDN. Keys live in this browser's localStorage only.
"use strict";

const $ = (sel) => document.querySelector(sel);
const KEY_STORE = "lumagate.key";
const ADMIN_STORE = "lumagate.admin";
const POLL_MS = 1000;

// ---- talking to the API ------------------------------------------------------------

/** Calls the API; an error answer becomes an Error whose message is the API's own `detail`. */
async function api(path, { method = "GET", body, token } = {}) {
  const headers = {};
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new Error("cannot reach the server: " + e.message);
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const detail = (data && (data.detail || (data.error && data.error.message))) || text || response.statusText;
    const err = new Error(response.status + " " + response.statusText + ": " + detail);
    err.status = response.status;
    throw err;
  }
  return data;
}

const base = (tier) => (tier === "pro" ? "/pro/luma" : "/luma");
const key = () => localStorage.getItem(KEY_STORE) || "";
const adminToken = () => localStorage.getItem(ADMIN_STORE) || "";

function showError(box, err) {
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = err.message || String(err);
  box.hidden = false;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

// ---- tabs --------------------------------------------------------------------------

function showView(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.view === name);
  $("#view-try").hidden = name !== "try";
  $("#view-ops").hidden = name !== "ops";
  if (name === "ops" && adminToken()) loadOps();
}
for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showView(tab.dataset.view));

// ---- try it ------------------------------------------------------------------------

const images = { start: null, end: null };

function readAsDataUri(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error("cannot read " + file.name));
    reader.readAsDataURL(file);
  });
}

async function setImage(which, file) {
  const zone = $("#drop-" + which);
  const img = zone.querySelector("img");
  const clear = zone.querySelector(".clear");
  if (!file) {
    images[which] = null;
    img.hidden = true; img.removeAttribute("src"); clear.hidden = true;
    return;
  }
  images[which] = await readAsDataUri(file);
  img.src = images[which]; img.hidden = false; clear.hidden = false;
}

for (const which of ["start", "end"]) {
  const zone = $("#drop-" + which);
  const input = $("#" + which + "-image");
  input.addEventListener("change", () => setImage(which, input.files[0]).catch((e) => showError($("#error"), e)));
  zone.querySelector(".clear").addEventListener("click", () => { input.value = ""; setImage(which, null); });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) setImage(which, file).catch((err) => showError($("#error"), err));
  });
}

$("#key").value = key();
$("#key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem(KEY_STORE, $("#key").value.trim());
  showError($("#error"), null);
  loadHistory();
});

function generationBody() {
  const body = {
    user_prompt: $("#prompt").value,
    model_name: $("#model").value,
    aspect_ratio: $("#aspect").value,
    resolution: $("#resolution").value,
    duration: $("#duration").value,
    loop: $("#loop").checked,
    expand_prompt: $("#expand").checked,
  };
  if (images.start) body.image_url = images.start;
  if (images.end) body.image_end_url = images.end;
  return body;
}

$("#gen-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  // The key field is what the user sees; keep it as the stored key.
  localStorage.setItem(KEY_STORE, $("#key").value.trim());
  const button = $("#submit");
  button.disabled = true;
  showError($("#error"), null);
  try {
    const task = await api(base($("#tier").value) + "/generations", { method: "POST", body: generationBody(), token: key() });
    follow(task);
    loadHistory();
  } catch (err) {
    showError($("#error"), err);
  } finally {
    button.disabled = false;
  }
});

let followed = null; // id of the task shown in the card
let pollTimer = null;

/** Shows a task in the card and keeps it fresh until it ends. */
function follow(task) {
  followed = task.id;
  clearTimeout(pollTimer);
  render(task);
  const tick = async () => {
    if (followed !== task.id) return;
    try {
      const fresh = await api("/luma/generations/" + task.id, { token: key() });
      if (followed !== task.id) return;
      render(fresh);
      if (fresh.state === "completed" || fresh.state === "failed") { loadHistory(); return; }
    } catch (err) {
      showError($("#error"), err);
      if (err.status && err.status < 500) return;
    }
    pollTimer = setTimeout(tick, POLL_MS);
  };
  if (task.state !== "completed" && task.state !== "failed") pollTimer = setTimeout(tick, POLL_MS);
}

let shownVideo = null;

function render(task) {
  $("#current").hidden = false;
  $("#current").dataset.id = task.id;
  $("#current").dataset.state = task.state;
  const state = $("#cur-state");
  state.textContent = task.state;
  state.className = "state " + task.state;
  $("#cur-queue").textContent = task.queue_position != null ? "queue position " + task.queue_position : "";
  $("#cur-wait").textContent = task.estimate_wait_seconds != null ? "about " + task.estimate_wait_seconds + " s to wait" : "";
  $("#cur-progress").value = task.state === "completed" ? 100 : task.progress || 0;
  $("#cur-prompt").textContent = task.prompt;
  $("#cur-meta").textContent = [task.tier, task.model_name, task.aspect_ratio, task.resolution, task.duration,
    task.loop ? "loop" : "", task.parent_id ? "extends " + task.parent_id.slice(0, 8) : "", task.id].filter(Boolean).join(" · ");
  const reason = $("#cur-reason");
  reason.hidden = !task.failure_reason;
  reason.textContent = task.failure_reason || "";
  const video = $("#cur-video");
  const done = task.state === "completed" && task.video && task.video.url;
  if (done) {
    // Links are re-signed on every read; only reload the player for another task.
    if (shownVideo !== task.id) {
      shownVideo = task.id;
      video.src = task.video.url;
      video.poster = task.video.thumbnail || "";
      video.hidden = false;
      video.play().catch(() => { /* the user can press play */ });
    }
    const download = $("#cur-download");
    download.href = task.video.download_url;
    download.hidden = false;
    $("#cur-extend").hidden = false;
    $("#cur-extend").dataset.tier = task.tier;
    $("#cur-extend").dataset.prompt = task.prompt;
  } else {
    if (shownVideo !== null) { video.pause(); video.removeAttribute("src"); video.load(); shownVideo = null; }
    video.hidden = true;
    $("#cur-download").hidden = true;
    $("#cur-extend").hidden = true;
  }
}

$("#cur-extend").addEventListener("click", async () => {
  const button = $("#cur-extend");
  const parent = $("#current").dataset.id;
  button.disabled = true;
  showError($("#error"), null);
  try {
    const body = generationBody();
    delete body.image_url; // the parent's last frame is the start frame
    if (!body.user_prompt.trim()) body.user_prompt = button.dataset.prompt || "";
    const task = await api(base(button.dataset.tier) + "/generations/" + parent + "/extend", { method: "POST", body, token: key() });
    follow(task);
    loadHistory();
  } catch (err) {
    showError($("#error"), err);
  } finally {
    button.disabled = false;
  }
});

async function loadHistory() {
  const list = $("#history");
  if (!key()) { list.replaceChildren(el("li", { class: "caption" }, "Enter a key to see your tasks.")); return; }
  try {
    const tasks = await api("/luma/generations?limit=24", { token: key() });
    list.replaceChildren(...tasks.map((t) => {
      const thumb = t.video && t.video.thumbnail
        ? el("img", { src: t.video.thumbnail, alt: "thumbnail of " + t.prompt, loading: "lazy" })
        : el("div", { class: "placeholder" });
      return el("li", { "data-id": t.id, "data-state": t.state, onclick: () => { showError($("#error"), null); follow(t); } },
        thumb, el("div", { class: "caption" }, el("strong", { class: "state " + t.state }, t.state), " ", t.prompt || "(image)"));
    }));
  } catch (err) {
    showError($("#error"), err);
  }
}
$("#refresh-history").addEventListener("click", loadHistory);

// ---- operators ---------------------------------------------------------------------

$("#admin-token").value = adminToken();
$("#admin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem(ADMIN_STORE, $("#admin-token").value.trim());
  loadOps();
});

async function adminCall(path, options = {}) {
  return api(path, { ...options, token: adminToken() });
}

async function loadOps() {
  const box = $("#ops-error");
  try {
    const [accounts, queue, keys, failures] = await Promise.all([
      adminCall("/admin/accounts"), adminCall("/admin/queue"), adminCall("/admin/keys"), adminCall("/admin/failures?limit=20"),
    ]);
    showError(box, null);
    $("#queue-summary").textContent =
      `relax waiting: ${queue.depth.relax} · pro waiting: ${queue.depth.pro} · in flight: ${queue.in_flight} of ${queue.slots} slots`;
    $("#accounts tbody").replaceChildren(...accounts.accounts.map((a) => el("tr", { "data-id": a.id },
      el("td", {}, a.id, el("div", { class: "meta" }, a.provider)),
      el("td", { class: "health-" + a.health }, a.health),
      el("td", {}, `${a.in_flight} / ${a.concurrency}`),
      el("td", {}, when(a.cooldown_until)),
      el("td", { class: "reason" }, a.disabled_reason || ""),
      el("td", {}, el("button", { type: "button", onclick: () => toggleAccount(a) }, a.enabled ? "Disable" : "Enable")))));
    $("#keys tbody").replaceChildren(...keys.keys.map((k) => el("tr", { "data-id": k.id },
      el("td", {}, k.id), el("td", {}, k.name), el("td", {}, k.tiers.join(", ")), el("td", {}, when(k.created_at)),
      el("td", { class: k.active ? "" : "revoked" }, k.active ? "active" : "revoked"),
      el("td", {}, k.active ? el("button", { type: "button", class: "revoke", onclick: () => revokeKey(k) }, "Revoke") : ""))));
    $("#failures tbody").replaceChildren(...failures.failures.map((f) => el("tr", {},
      el("td", {}, when(f.failed_at)), el("td", {}, f.task_id.slice(0, 8)), el("td", {}, f.key_id),
      el("td", {}, f.account || ""), el("td", { class: "reason" }, f.failure_reason))));
  } catch (err) {
    showError(box, err);
  }
}

async function toggleAccount(account) {
  try {
    const action = account.enabled ? "disable" : "enable";
    await adminCall(`/admin/accounts/${encodeURIComponent(account.id)}/${action}`, { method: "POST", body: {} });
  } catch (err) {
    showError($("#ops-error"), err);
  }
  loadOps();
}

async function revokeKey(k) {
  if (!confirm(`Revoke key ${k.id} (${k.name})? Clients using it are refused at once.`)) return;
  try {
    await adminCall("/admin/keys/" + encodeURIComponent(k.id), { method: "DELETE" });
  } catch (err) {
    showError($("#ops-error"), err);
  }
  loadOps();
}

$("#key-create").addEventListener("submit", async (e) => {
  e.preventDefault();
  const tiers = [["relax", "#new-key-relax"], ["pro", "#new-key-pro"]].filter(([, sel]) => $(sel).checked).map(([t]) => t);
  try {
    const created = await adminCall("/admin/keys", { method: "POST", body: { name: $("#new-key-name").value, tiers } });
    const secret = $("#new-key-secret");
    secret.textContent = `Key ${created.id} (${created.name}), shown only once: ${created.secret}`;
    secret.dataset.secret = created.secret;
    secret.hidden = false;
    $("#new-key-name").value = "";
  } catch (err) {
    showError($("#ops-error"), err);
  }
  loadOps();
});

// Keep the operator view fresh while it is open.
setInterval(() => { if (!$("#view-ops").hidden && adminToken() && !document.hidden) loadOps(); }, 5000);

loadHistory();
