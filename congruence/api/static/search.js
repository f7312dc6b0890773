// The brand search page: a brand (known or new) + filters -> a grid of influencers.
"use strict";

const $ = id => document.getElementById(id);
const state = { mode: "known", lastQuery: null, lastHits: [], like: [], dislike: [], rerun: null, handles: {},
                latest: 0 };

function switchMode(mode) {
  state.mode = mode;
  $("tab-known").classList.toggle("on", mode === "known");
  $("tab-new").classList.toggle("on", mode === "new");
  $("known-fields").hidden = mode !== "known";
  $("new-fields").hidden = mode !== "new";
}

function filterValues() {
  const num = id => ($(id).value.trim() === "" ? null : Number($(id).value));
  const excluded = Array.from($("exclude-categories").selectedOptions).map(o => o.value);
  const screened = $("brand-safe").checked || excluded.length > 0;
  return { category: $("category").value || null, min_followers: num("min-followers"),
           max_followers: num("max-followers"), micro: $("micro").checked, k: num("k") || 24,
           brand_safe: $("brand-safe").checked, exclude_categories: excluded,
           safe_last: screened ? num("safe-last") : null, ...metricFilterValues(), ...collabFilterValues(),
           ...listFilterValues() };
}

// The filters as the form shows them now, or null (and why, in the status line) when they contradict.
function checkedFilters() {
  const f = filterValues();
  if (f.min_followers !== null && f.max_followers !== null && f.min_followers > f.max_followers) {
    setStatus($("status"), "The minimum number of followers is above the maximum.", true);
    return null;
  }
  if (f.since && !f.not_worked_with.length) {
    setStatus($("status"), "“… since” applies only with handles in “Not worked with”.", true);
    return null;
  }
  return f;
}

// The JSON body of a search's filters (and k, posts) for /v1/match and /v1/similar.
function filterBody(f) {
  return { k: f.k, posts: 3, category: f.category, micro: f.micro, min_followers: f.min_followers,
           max_followers: f.max_followers, brand_safe: f.brand_safe, exclude_categories: f.exclude_categories,
           safe_last: f.safe_last, ...metricFilterBody(f), ...collabFilterBody(f), ...listFilterBody(f) };
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
  const f = checkedFilters();
  if (!f) return;
  let request;
  if (state.mode === "known") {
    const brand = $("brand").value.trim();
    if (!brand) { setStatus($("status"), "Pick a brand first.", true); return; }
    request = jsonPost({ brand_id: brand, ...filterBody(f) });
    state.lastQuery = { brand };
    state.rerun = (fb, now) => ["/v1/match", jsonPost({ brand_id: brand, ...filterBody(now), ...fb }), `Influencers for ${brand}`];
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
    state.rerun = (fb, now) => ["/v1/match", jsonPost({ query_id: state.lastQuery.queryId, ...filterBody(now), ...fb }),
                                "Influencers for your brand"];
  }
  resetFeedback();
  await runQuery("/v1/match", request, state.mode === "known" ? `Influencers for ${$("brand").value.trim()}` :
                 "Influencers for your brand");
}

function jsonPost(body) {
  return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
}

// Each call is numbered: an answer that arrives after a later call was made (two quick dislikes, say)
// is dropped, so the list on screen is always the one of the latest marks and filters. fresh: a
// new list (a look-alike search), not the same one re-run: nothing to compare it with.
async function runQuery(path, request, title, fresh = false) {
  const ticket = ++state.latest;
  $("search-btn").disabled = true;
  $("export-btn").disabled = true;
  setStatus($("status"), "Searching…");
  try {
    const res = await apiJson(path, request);
    if (ticket !== state.latest) return;
    const before = feedbackActive() && !fresh ? state.lastHits : null;
    state.lastHits = res.data;
    if (res.query_id) state.lastQuery.queryId = res.query_id;
    for (const h of res.data) state.handles[h.influencer_id] = h.handle;
    $("ranking").textContent = res.ranking ? `Scores: ${res.ranking}` : "";
    showWarnings(res.warnings);
    render(res.data, title, before);
    showFeedback(before, res.data);
    setStatus($("status"), res.count ? `${res.count} influencers, best first.` : "");
    $("export-btn").disabled = !res.count;
  } catch (e) {
    if (ticket === state.latest) setStatus($("status"), e.message, true);
  } finally {
    if (ticket === state.latest) $("search-btn").disabled = false;
  }
}

function render(hits, title, before = null) {
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
  const was = before ? new Map(before.map(h => [h.influencer_id, h.rank])) : null;
  for (const h of hits) grid.append(card(h, was));
  results.append(grid);
}

function card(h, was = null) {
  const thumbs = el("div", { class: "thumbs" });
  for (const p of h.top_posts) {
    if (!p.thumbnail_url) { thumbs.append(el("div", { class: "noimg" }, "text post")); continue; }
    const img = el("img", { alt: `post ${p.post_id}`, "data-post": p.post_id, title: "show what made it match",
                            onclick: () => showHeatmap(p) });
    loadImage(img, p.thumbnail_url);
    thumbs.append(img);
  }
  const followers = h.followers === null ? "followers unknown" : `${fmt.format(h.followers)} followers`;
  const vote = (kind, label) => {
    const on = state[kind].includes(h.influencer_id);
    return el("button", { type: "button", class: `${kind}${on ? " on" : ""}`, title: label,
                          "aria-label": `${label} @${h.handle}`, "aria-pressed": String(on),
                          onclick: () => mark(h, kind) }, icon(kind));
  };
  return el("article", { class: "card", "data-influencer": h.influencer_id },
    el("div", { class: "top" }, el("span", { class: "handle" }, `@${h.handle}`), movement(h, was),
       el("span", { class: "rank" }, `#${h.rank}`)),
    el("div", { class: "meta" }, `${h.category || "no category"} · ${followers}`),
    el("div", { class: "score" }, `score ${h.score.toFixed(3)}`),
    safetyLine(h.safety),
    metricsLine(h),
    thumbs,
    el("div", { class: "votes" }, vote("like", "More like this"), vote("dislike", "Fewer like this")),
    listControls(h),
    el("a", { class: "similar", onclick: () => showSimilar(h) }, "Similar influencers →"));
}

// "new" or "up 3" against the previous list, after feedback.
function movement(h, was) {
  if (!was) return null;
  if (!was.has(h.influencer_id)) return el("span", { class: "badge new" }, "new");
  const delta = was.get(h.influencer_id) - h.rank;
  return delta ? el("span", { class: "badge" }, delta > 0 ? `↑${delta}` : `↓${-delta}`) : null;
}

function safetyLine(s) {
  if (!s || !s.flagged_posts) return null;
  const cats = [...new Set(s.flags.map(f => f.category))].join(", ");
  const why = s.flags.map(f => `${f.post_id}: ${f.category}, ${f.evidence}` +
                              (f.source === "words" ? "" : ` (${f.source} ${f.score.toFixed(2)})`)).join("\n");
  return el("div", { class: "flagged", title: why }, icon("warning"),
            `${s.flagged_posts} of ${s.screened_posts} posts flagged: ${cats}`);
}

function feedbackActive() { return state.like.length + state.dislike.length > 0; }

function resetFeedback() {
  state.like = [];
  state.dislike = [];
  $("feedback").hidden = true;
}

// Like / dislike on a card: toggle the mark, re-run the search at once with all the feedback.
async function mark(h, kind) {
  const other = kind === "like" ? "dislike" : "like";
  state[other] = state[other].filter(a => a !== h.influencer_id);
  state[kind] = state[kind].includes(h.influencer_id) ? state[kind].filter(a => a !== h.influencer_id)
                                                      : state[kind].concat([h.influencer_id]);
  await rerun();
}

async function rerun() {
  if (!state.rerun) return;
  const now = checkedFilters();
  if (!now) return;
  const [path, request, title] = state.rerun({ like: state.like, dislike: state.dislike }, now);
  await runQuery(path, request, title);
}

function showFeedback(before, hits) {
  const box = $("feedback");
  box.hidden = !feedbackActive();
  if (box.hidden) return;
  const chip = (a, kind) => {
    const who = `@${state.handles[a] || a}`, what = kind === "like" ? "liked" : "disliked";
    return el("span", { class: `mark ${kind}`, "data-influencer": a, title: `${what} ${who}` }, icon(kind), who,
      el("button", { type: "button", class: "unmark", title: "Remove this mark", "aria-label": `Remove the mark: ${what} ${who}`,
                     onclick: () => unmark(a) }, icon("remove")));
  };
  $("feedback-marks").replaceChildren(...state.like.map(a => chip(a, "like")), ...state.dislike.map(a => chip(a, "dislike")));
  $("lookalikes-btn").hidden = !state.like.length;
  if (!before) {  // a new list: the marks carried over, nothing to compare
    $("changes").textContent = "The liked and disliked are not shown again.";
    return;
  }
  const now = new Set(hits.map(h => h.influencer_id));
  const old = new Set(before.map(h => h.influencer_id));
  const added = hits.filter(h => !old.has(h.influencer_id)).map(h => `@${h.handle}`);
  const left = before.filter(h => !now.has(h.influencer_id) && !state.like.includes(h.influencer_id) &&
                                 !state.dislike.includes(h.influencer_id)).map(h => `@${h.handle}`);
  $("changes").textContent = `What changed: ${added.length} new (${added.join(", ") || "none"}); ` +
    `${left.length} left the list (${left.join(", ") || "none"}); the liked and disliked are not shown again.`;
}

async function unmark(a) {
  state.like = state.like.filter(x => x !== a);
  state.dislike = state.dislike.filter(x => x !== a);
  await rerun();
}

// Look-alikes of every liked influencer at once (the disliked stay disliked).
async function lookalikesOfLiked() {
  const n = state.like.length;
  await lookalikes(state.like.slice(), `Look-alikes of ${n} influencer${n === 1 ? "" : "s"}`);
}

// Look-alikes of one card's influencer (the disliked stay disliked).
async function showSimilar(h) {
  await lookalikes([h.influencer_id], `Influencers similar to @${h.handle}`);
  window.scrollTo({ top: 0, behavior: "smooth" });
}

// A look-alike list of these seeds: the likes are dropped (they steered the list before; the
// seeds are what is wanted now), the dislikes stay out.
async function lookalikes(seeds, title) {
  const now = checkedFilters();
  if (!now) return;
  state.lastQuery = { brand: null, similarTo: seeds };
  state.rerun = (fb, f) => ["/v1/similar", jsonPost({ influencers: seeds, ...filterBody(f), ...fb }), title];
  state.like = [];
  state.dislike = state.dislike.filter(a => !seeds.includes(a));
  $("feedback").hidden = !feedbackActive();
  await runQuery(...state.rerun({ like: [], dislike: state.dislike }, now), true);
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
  if (!brand || feedbackActive() || state.lastQuery.saved) {  // a new brand, a similar list, a list steered by
    // feedback or a saved search's (its options are not the form's): the rows on screen
    const header = ["rank", "influencer_id", "handle", "followers", "category", "score"];
    const lines = [header.join(",")].concat(state.lastHits.map(h => header.map(k => csvCell(h[k])).join(",")));
    saveBlob(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }), "shortlist.csv");
    return;
  }
  const f = checkedFilters();
  if (!f) return;
  const body = { brands: [brand], k: f.k, format: "csv", category: f.category, micro: f.micro,
                 min_followers: f.min_followers, max_followers: f.max_followers, brand_safe: f.brand_safe,
                 exclude_categories: f.exclude_categories, safe_last: f.safe_last, ...metricFilterBody(f),
                 ...collabFilterBody(f), ...listFilterBody(f) };
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
    showWarnings(job.warnings);
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
  $("clear-feedback").addEventListener("click", () => { resetFeedback(); rerun(); });
  $("lookalikes-btn").addEventListener("click", lookalikesOfLiked);
  loadCatalog();
});
