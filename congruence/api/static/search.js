// The brand search page: a brand (known or new) + filters -> a grid of influencers.
"use strict";

const $ = id => document.getElementById(id);
const state = { mode: "known", lastQuery: null, lastHits: [] };

function switchMode(mode) {
  state.mode = mode;
  $("tab-known").classList.toggle("on", mode === "known");
  $("tab-new").classList.toggle("on", mode === "new");
  $("known-fields").hidden = mode !== "known";
  $("new-fields").hidden = mode !== "new";
}

function filterValues() {
  const num = id => ($(id).value.trim() === "" ? null : Number($(id).value));
  return { category: $("category").value || null, min_followers: num("min-followers"),
           max_followers: num("max-followers"), micro: $("micro").checked, k: num("k") || 24 };
}

async function loadCatalog() {
  try {
    const cats = await apiJson("/v1/categories");
    for (const c of cats.data) $("category").append(el("option", { value: c.category }, `${c.category} (${c.count})`));
    const brands = await apiJson("/v1/accounts?kind=brand&limit=500");
    for (const b of brands.data) $("brand-list").append(el("option", { value: b.id }, `${b.handle} · ${b.category}`));
    if (!brands.count) setStatus($("status"), "The corpus has no brands yet: describe a new brand instead, or ingest a corpus.");
  } catch (e) {
    setStatus($("status"), e.message, true);
  }
}

async function search(event) {
  event.preventDefault();
  const f = filterValues();
  if (f.min_followers !== null && f.max_followers !== null && f.min_followers > f.max_followers) {
    setStatus($("status"), "The minimum number of followers is above the maximum.", true);
    return;
  }
  let request;
  if (state.mode === "known") {
    const brand = $("brand").value.trim();
    if (!brand) { setStatus($("status"), "Pick a brand first.", true); return; }
    const body = { brand_id: brand, k: f.k, posts: 3, category: f.category, micro: f.micro,
                   min_followers: f.min_followers, max_followers: f.max_followers };
    request = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    state.lastQuery = { brand };
  } else {
    const files = $("images").files, text = $("text").value.trim();
    if (!files.length && !text) { setStatus($("status"), "Add a few images or a description of the brand.", true); return; }
    if (files.length > 20) { setStatus($("status"), `At most 20 images, you chose ${files.length}.`, true); return; }
    const form = new FormData();
    for (const file of files) form.append("images", file);
    form.append("text", text);
    for (const [key, value] of Object.entries(f)) if (value !== null) form.append(key, String(value));
    form.append("posts", "3");
    request = { method: "POST", body: form };
    state.lastQuery = { brand: null };
  }
  await runQuery("/v1/match", request, state.mode === "known" ? `Influencers for ${$("brand").value.trim()}` :
                 "Influencers for your brand");
}

async function runQuery(path, request, title) {
  $("search-btn").disabled = true;
  $("export-btn").disabled = true;
  setStatus($("status"), "Searching…");
  try {
    const res = await apiJson(path, request);
    state.lastHits = res.data;
    if (res.query_id) state.lastQuery.queryId = res.query_id;
    $("ranking").textContent = res.ranking ? `Scores: ${res.ranking}` : "";
    render(res.data, title);
    setStatus($("status"), res.count ? `${res.count} influencers, best first.` : "");
    $("export-btn").disabled = !res.count;
  } catch (e) {
    setStatus($("status"), e.message, true);
  } finally {
    $("search-btn").disabled = false;
  }
}

function render(hits, title) {
  const results = $("results");
  results.replaceChildren();
  $("results-title").hidden = false;
  $("results-title").textContent = title;
  if (!hits.length) {
    results.append(el("p", { class: "empty" },
      "No influencers pass these filters. Try widening the follower range, clearing the category, or unticking micro-influencers."));
    return;
  }
  const grid = el("div", { class: "grid" });
  for (const h of hits) grid.append(card(h));
  results.append(grid);
}

function card(h) {
  const thumbs = el("div", { class: "thumbs" });
  for (const p of h.top_posts) {
    if (!p.thumbnail_url) { thumbs.append(el("div", { class: "noimg" }, "text post")); continue; }
    const img = el("img", { alt: `post ${p.post_id}`, "data-post": p.post_id, title: "show what made it match",
                            onclick: () => showHeatmap(p) });
    loadImage(img, p.thumbnail_url);
    thumbs.append(img);
  }
  const followers = h.followers === null ? "followers unknown" : `${fmt.format(h.followers)} followers`;
  return el("article", { class: "card", "data-influencer": h.influencer_id },
    el("div", { class: "top" }, el("span", { class: "handle" }, `@${h.handle}`), el("span", { class: "rank" }, `#${h.rank}`)),
    el("div", { class: "meta" }, `${h.category || "no category"} · ${followers}`),
    el("div", { class: "score" }, `score ${h.score.toFixed(3)}`),
    thumbs,
    el("a", { class: "similar", onclick: () => showSimilar(h) }, "Similar influencers →"));
}

async function showSimilar(h) {
  const f = filterValues();
  const q = new URLSearchParams({ k: f.k, posts: 3, micro: f.micro });
  if (f.category) q.set("category", f.category);
  if (f.min_followers !== null) q.set("min_followers", f.min_followers);
  if (f.max_followers !== null) q.set("max_followers", f.max_followers);
  state.lastQuery = { brand: null, similarTo: h.influencer_id };
  await runQuery(`/v1/influencers/${encodeURIComponent(h.influencer_id)}/similar?${q}`, {},
                 `Influencers similar to @${h.handle}`);
  window.scrollTo({ top: 0, behavior: "smooth" });
}

async function showHeatmap(post) {
  const dialog = $("heatmap");
  $("heat-photo").removeAttribute("src");
  $("heat-map").removeAttribute("src");
  loadImage($("heat-photo"), post.image_url);
  dialog.showModal();
  const last = state.lastQuery || {};
  if (!last.brand && !last.queryId) {
    setStatus($("heat-status"), "Heatmaps explain a match with a brand; this list compares influencers with each other.");
    return;
  }
  const against = last.brand || "your brand";
  setStatus($("heat-status"), "Computing the heatmap…");
  try {
    const q = new URLSearchParams(last.brand ? { brand: last.brand, post: post.post_id }
                                             : { query: last.queryId, post: post.post_id });
    const resp = await api(`/v1/explain?${q}`);
    $("heat-map").src = URL.createObjectURL(await resp.blob());
    const score = Number(resp.headers.get("X-Congruence-Score"));
    setStatus($("heat-status"), `Red areas raised this post's match with ${against} the most (score ${score.toFixed(3)}).`);
  } catch (e) {
    setStatus($("heat-status"), e.message, true);
  }
}

function csvCell(v) {
  const s = v === null || v === undefined ? "" : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

async function exportShortlist() {
  const brand = state.lastQuery && state.lastQuery.brand;
  if (!brand) {  // a new brand or a similar list: the rows on screen are the shortlist
    const header = ["rank", "influencer_id", "handle", "followers", "category", "score"];
    const lines = [header.join(",")].concat(state.lastHits.map(h => header.map(k => csvCell(h[k])).join(",")));
    saveBlob(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }), "shortlist.csv");
    return;
  }
  const f = filterValues();
  const body = { brands: [brand], k: f.k, format: "csv", category: f.category, micro: f.micro,
                 min_followers: f.min_followers, max_followers: f.max_followers };
  $("export-btn").disabled = true;
  const bar = $("progress");
  bar.hidden = false;
  try {
    let job = await apiJson("/v1/exports", { method: "POST", headers: { "Content-Type": "application/json" },
                                             body: JSON.stringify(body) });
    while (job.status === "queued" || job.status === "running") {
      const pct = job.total_brands ? (100 * job.done_brands) / job.total_brands : 5;
      bar.firstElementChild.style.width = `${Math.max(5, pct)}%`;
      setStatus($("status"), `Exporting… ${job.done_brands} of ${job.total_brands || "?"} brands.`);
      await new Promise(r => setTimeout(r, 400));
      job = await apiJson(`/v1/exports/${job.id}`);
    }
    if (job.status !== "done") throw new Error(`The export failed: ${job.error || "no reason given"}.`);
    bar.firstElementChild.style.width = "100%";
    saveBlob(await (await api(job.download_url)).blob(), `shortlist-${brand}.csv`);
    setStatus($("status"), `Exported ${job.rows} rows.`);
  } catch (e) {
    setStatus($("status"), e.message, true);
  } finally {
    bar.hidden = true;
    $("export-btn").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("tab-known").addEventListener("click", () => switchMode("known"));
  $("tab-new").addEventListener("click", () => switchMode("new"));
  $("search-form").addEventListener("submit", search);
  $("export-btn").addEventListener("click", exportShortlist);
  $("heat-close").addEventListener("click", () => $("heatmap").close());
  loadCatalog();
});
