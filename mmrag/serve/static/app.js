// mmrag serve: ask a question, stream the answer over Server-Sent Events, show the sources.
// Every piece of text from the server is put into the page as text nodes (never as HTML).
"use strict";

const $ = (sel) => document.querySelector(sel);
const STOP = new Set(("the and for are was were what which who whom how why when where with from this that " +
  "these those does did has have had you your can could would should into about there their them then " +
  "than its it's not but all any our out use used using show shows tell").split(" "));
const WORD = /([\p{L}\p{N}]+)/u;
let current = null; // the open EventSource, if any
let tokens = 0;

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") node.textContent = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

function queryWords(q) {
  return (q.toLowerCase().match(/[\p{L}\p{N}]+/gu) || []).filter((w) => w.length >= 3 && !STOP.has(w));
}

function matches(word, words) {
  const w = word.toLowerCase();
  // "whisking" matches "whisk": a shared stem of four letters or more counts
  return words.some((q) => q === w || (q.length >= 4 && w.length >= 4 && (w.startsWith(q) || q.startsWith(w))));
}

// Text with the query's words in <mark>, built from text nodes.
function highlighted(text, words) {
  const frag = document.createDocumentFragment();
  for (const part of text.split(WORD)) {
    if (!part) continue;
    if (WORD.test(part) && matches(part, words)) frag.append(el("mark", { text: part }));
    else frag.append(document.createTextNode(part));
  }
  return frag;
}

// The answer text with [1], [1, 3] turned into links to the sources.
function linkCitations(text, labels) {
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(/\[(\d+(?:\s*,\s*\d+)*)\]/g)) {
    frag.append(document.createTextNode(text.slice(last, m.index)));
    const nums = m[1].split(",").map((n) => n.trim());
    frag.append("[");
    nums.forEach((n, i) => {
      if (i) frag.append(", ");
      if (labels.has(Number(n))) {
        frag.append(el("a", { class: "cite", href: `#src-${n}`, text: n, onclick: () => flash(n) }));
      } else frag.append(el("span", { class: "cite-invalid", title: "no source has this label", text: n }));
    });
    frag.append("]");
    last = m.index + m[0].length;
  }
  frag.append(document.createTextNode(text.slice(last)));
  return frag;
}

function flash(n) {
  const li = document.getElementById(`src-${n}`);
  if (!li) return;
  li.classList.add("flash");
  setTimeout(() => li.classList.remove("flash"), 1200);
}

function videoBlock(s) {
  const start = s.t_start || 0;
  const end = s.t_end != null ? s.t_end : start;
  // The #t= media fragment starts the clip at t_start and pauses at t_end.
  const video = s.modality === "audio"
    ? el("audio", {
      src: `${s.media}#t=${start},${end}`, controls: "", preload: "metadata",
      class: "clip", dataset: { start: String(start), end: String(end) },
    })
    : el("video", {
      src: `${s.media}#t=${start},${end}`, controls: "", preload: "metadata", poster: s.thumb,
      class: "clip", dataset: { start: String(start), end: String(end) },
    });
  const play = el("button", {
    type: "button", class: "play", text: `▶ ${s.locator}`,
    onclick: () => { video.currentTime = start; video.play().catch(() => {}); },
  });
  return [video, play];
}

function sourceItem(s, words, cited) {
  const label = s.label != null ? s.label : null;
  const media = el("div", { class: "media" });
  if ((s.modality === "video" || s.modality === "audio") && s.media) media.append(...videoBlock(s));
  else if (s.thumb) {
    media.append(el("img", { class: "thumb", src: s.thumb, alt: `${s.name} ${s.locator}`.trim(), loading: "lazy" }));
  }
  const head = el("div", { class: "head" }, [
    label != null ? el("span", { class: "label", text: `[${label}]` }) : null,
    el("span", { class: "name", text: s.name, title: s.path }),
    s.document ? el("span", { class: "kind", text: s.document }) : null,
    el("span", { class: "kind", text: s.modality }),
    s.locator ? el("span", { class: "range", text: s.locator }) : null,
    cited ? el("span", { class: "cited", text: "cited" }) : null,
    el("span", { class: "score", text: Number(s.score).toFixed(3) }),
  ]);
  const body = el("div", { class: "body" }, [head]);
  if (s.text) body.append(el("p", { class: "snippet" }, [highlighted(s.text, words)]));
  return el("li", {
    class: "source", id: label != null ? `src-${label}` : `hit-${s.id}`, dataset: { modality: s.modality },
  }, [media, body]);
}

function showSources(list, question, cited = []) {
  const words = queryWords(question);
  const ol = $("#sources");
  ol.replaceChildren(...list.map((s) => sourceItem(s, words, cited.includes(s.label))));
}

function setBusy(busy) {
  $("#ask").disabled = busy;
  $("#search").disabled = busy;
}

function status(text, error = false) {
  $("#status").textContent = text;
  $("#status").classList.toggle("error", error);
}

function params() {
  const q = $("#question").value.trim();
  const k = $("#k").value || "5";
  return { q, k, qs: new URLSearchParams({ q, k }).toString() };
}

function ask(ev) {
  ev.preventDefault();
  const { q, qs } = params();
  if (!q) return;
  if (current) current.close();
  const answer = $("#answer");
  answer.replaceChildren();
  answer.dataset.state = "streaming";
  $("#sources").replaceChildren();
  tokens = 0;
  answer.dataset.tokens = "0";
  status("retrieving and generating…");
  setBusy(true);
  const started = performance.now();
  const es = new EventSource(`/api/ask/stream?${qs}`);
  current = es;
  const finish = (state) => { es.close(); current = null; answer.dataset.state = state; setBusy(false); };
  es.addEventListener("token", (e) => {
    tokens += 1;
    answer.dataset.tokens = String(tokens);
    answer.append(document.createTextNode(JSON.parse(e.data).text));
  });
  es.addEventListener("done", (e) => {
    const a = JSON.parse(e.data);
    const labels = new Set(a.sources.map((s) => s.label));
    answer.replaceChildren(linkCitations(a.answer || "(empty answer)", labels));
    showSources(a.sources, q, a.cited);
    const t = a.timings || {};
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    status(`${a.model} · ${secs} s (retrieve ${(t.retrieve || 0).toFixed(2)} s, generate ` +
      `${(t.generate || 0).toFixed(2)} s) · ${a.sources.length} sources`);
    finish("done");
  });
  es.addEventListener("error", (e) => {
    // A server-sent `error` event carries data; a dropped connection does not.
    const msg = e.data ? JSON.parse(e.data).error : "connection to the server lost";
    status(msg, true);
    finish("error");
  });
}

async function searchOnly() {
  const { q, qs } = params();
  if (!q) return;
  setBusy(true);
  status("searching…");
  try {
    const r = await fetch(`/api/search?${qs}`);
    const data = await r.json();
    if (!r.ok) throw new Error(data.error || r.statusText);
    showSources(data.hits, q);
    status(`${data.hits.length} hits`);
  } catch (err) {
    status(String(err.message || err), true);
  } finally {
    setBusy(false);
  }
}

async function loadInfo() {
  try {
    const r = await fetch("/api/info");
    const d = await r.json();
    if (!r.ok) throw new Error(d.error || r.statusText);
    const counts = Object.entries(d.points_by_modality || {}).filter(([, n]) => n).map(([m, n]) => `${n} ${m}`);
    $("#index-info").textContent = `${d.files} files (${counts.join(", ")}) · answers by ${d.generator.model}`;
    if (d.serve && d.serve.k) $("#k").value = String(d.serve.k);
  } catch (err) {
    $("#index-info").textContent = `index info unavailable: ${err.message || err}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#ask-form").addEventListener("submit", ask);
  $("#search").addEventListener("click", searchOnly);
  loadInfo();
  $("#question").focus();
});
