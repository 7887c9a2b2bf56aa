// The search page of `searchkit serve`: no build step, no dependencies, served by the app.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "searchkit-key";
let single = false; // a single-index server: /search instead of /indexes/{name}/search

function headers() {
  const key = sessionStorage.getItem(KEY);
  const h = { "content-type": "application/json" };
  if (key) h.authorization = `Bearer ${key}`;
  return h;
}

async function call(path, body) {
  const init = body === undefined ? { headers: headers() } : { method: "POST", headers: headers(), body: JSON.stringify(body) };
  const response = await fetch(path, init);
  if (response.status === 401) {
    sessionStorage.removeItem(KEY);
    $("key-form").hidden = false;
    $("key").focus();
    throw new Error("this server needs a key: enter the search key above");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const err = new Error(data.detail || `HTTP ${response.status}`);
    err.status = response.status;
    throw err;
  }
  return data;
}

async function loadIndexes() {
  const select = $("index");
  select.replaceChildren();
  let names;
  try {
    names = (await call("/indexes")).indexes.map((i) => [i.name, `${i.name} (${i.documents})`]);
  } catch (err) {
    if (err.status !== 404) throw err;
    const info = await call("/info");
    single = true;
    names = [[info.name, `${info.name} (${info.documents})`]];
  }
  for (const [name, label] of names) select.add(new Option(label, name));
  $("status").textContent = `${names.length} index${names.length === 1 ? "" : "es"}`;
}

// Query terms: words by Intl.Segmenter (Chinese too), else split on spaces.
function terms(query) {
  if (typeof Intl !== "undefined" && Intl.Segmenter) {
    const seg = new Intl.Segmenter(undefined, { granularity: "word" });
    return [...seg.segment(query)].filter((s) => s.isWordLike).map((s) => s.segment);
  }
  return query.split(/\s+/).filter(Boolean);
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// `text` as DOM nodes with every query term in a <mark> (no HTML is ever parsed).
function highlighted(text, words) {
  const frag = document.createDocumentFragment();
  const wanted = words.filter((w) => w.length > 1 || /[^\x00-\x7f]/.test(w));
  if (!wanted.length) {
    frag.append(text);
    return frag;
  }
  const pattern = new RegExp(`(${wanted.map(escapeRegExp).sort((a, b) => b.length - a.length).join("|")})`, "giu");
  text.split(pattern).forEach((part, i) => {
    if (i % 2) {
      const mark = document.createElement("mark");
      mark.textContent = part;
      frag.append(mark);
    } else if (part) frag.append(part);
  });
  return frag;
}

function show(result, query) {
  const list = $("results");
  list.replaceChildren();
  const words = terms(query);
  for (const hit of result.hits) {
    const item = document.createElement("li");
    item.className = "hit";
    item.dataset.id = hit.id;
    item.title = `score ${hit.score.toFixed(4)} · retrieval ${hit.retrieval_score.toFixed(4)} (rank ${hit.retrieval_rank})`;
    const title = document.createElement("span");
    title.className = "title";
    title.append(highlighted(hit.title || hit.id, words));
    const id = document.createElement("span");
    id.className = "id";
    id.textContent = hit.id;
    const passage = document.createElement("p");
    passage.className = "passage";
    passage.append(highlighted(hit.passage ? hit.passage.text : hit.text, words));
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = Object.entries(hit.metadata || {}).map(([k, v]) => `${k}: ${v}`).join(" · ");
    item.append(title, id, passage, meta);
    list.append(item);
  }
  const how = result.reranked ? `reranked by ${result.reranker}` : "retrieval order";
  const degraded = result.degraded ? " (reranker busy)" : "";
  $("status").textContent = `${result.hits.length} hits, ${result.mode}, ${how}${degraded}`;
}

async function search(event) {
  event.preventDefault();
  $("error").hidden = true;
  const query = $("query").value.trim();
  if (!query) return;
  const body = { query, k: Number($("k").value) || 10, rerank: $("rerank").checked, degrade: true };
  if ($("mode").value) body.mode = $("mode").value;
  if ($("where").value.trim()) body.where = $("where").value.trim();
  const path = single ? "/search" : `/indexes/${encodeURIComponent($("index").value)}/search`;
  try {
    show(await call(path, body), query);
  } catch (err) {
    $("error").textContent = err.message;
    $("error").hidden = false;
  }
}

async function start() {
  try {
    await loadIndexes();
    $("key-form").hidden = true;
  } catch (err) {
    $("error").textContent = err.message;
    $("error").hidden = false;
  }
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  $("error").hidden = true;
  start();
});
$("search-form").addEventListener("submit", search);
start();
