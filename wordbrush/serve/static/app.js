// The wordbrush page: posts to /v1/images/generations (the same API as any client) and shows the images.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "wordbrush-api-key"; // sessionStorage: the key stays in this tab

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
  if (/API key/i.test(message)) $("key-box").open = true;
}

function showWarnings(list) {
  const ul = $("warnings");
  ul.replaceChildren(...list.map((w) => Object.assign(document.createElement("li"), { textContent: w })));
  ul.hidden = list.length === 0;
}

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    if (!r.ok) { $("model-info").textContent = r.status === 401 ? "enter the API key below" : ""; return; }
    const body = await r.json();
    $("model-info").textContent = "model: " + body.data.map((m) => m.id).join(", ");
  } catch (_) { $("model-info").textContent = ""; }
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 60) || "image";
}

function addImages(prompt, data) {
  const gallery = $("gallery");
  for (const item of data) {
    const src = "data:image/png;base64," + item.b64_json;
    const fig = document.createElement("figure");
    const img = Object.assign(document.createElement("img"), { src, alt: prompt, className: "result" });
    const cap = document.createElement("figcaption");
    const drawn = item.revised_prompt && item.revised_prompt !== prompt ? ` — drawn as: ${item.revised_prompt}` : "";
    const text = Object.assign(document.createElement("span"), { className: "prompt", textContent: prompt,
                                                                 title: `${prompt} (seed ${item.seed})${drawn}` });
    const link = Object.assign(document.createElement("a"), { href: src, textContent: "download",
                                                              download: `${slug(prompt)}-seed${item.seed}.png` });
    cap.append(text, link);
    fig.append(img, cap);
    gallery.prepend(fig);
  }
}

function numberOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

async function generate(event) {
  event.preventDefault();
  showError("");
  const prompt = $("prompt").value.trim();
  if (!prompt) { showError("type a prompt first"); return; }
  const body = { prompt, n: numberOrNull("n") ?? 1, response_format: "b64_json" };
  const seed = numberOrNull("seed"), guidance = numberOrNull("guidance");
  if (seed !== null) body.seed = seed;
  if (guidance !== null) body.guidance_scale = guidance;
  $("generate").disabled = true;
  $("status").textContent = "drawing…";
  const started = performance.now();
  try {
    const r = await fetch("/v1/images/generations", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!r.ok) { showError(await errorOf(r)); $("status").textContent = ""; return; }
    const out = await r.json();
    addImages(prompt, out.data);
    showWarnings(out.warnings || []);
    $("status").textContent = `${out.data.length} image${out.data.length === 1 ? "" : "s"} in ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`;
  } catch (e) {
    showError("could not reach the server: " + e.message);
    $("status").textContent = "";
  } finally {
    $("generate").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = sessionStorage.getItem(KEY) || "";
  $("api-key").addEventListener("change", () => {
    sessionStorage.setItem(KEY, $("api-key").value.trim());
    loadModel();
  });
  $("generate-form").addEventListener("submit", generate);
  loadModel();
});
