// Saved searches on the search page (docs/saved-searches.md): "Save this search" keeps the form's
// brand (or the new brand just searched), filters, feedback marks and k under a name; the panel
// reruns one and marks on each card who is new since its previous run, and names who is gone.
"use strict";

const saved = { byName: {}, replacing: "" };
const sEl = id => document.getElementById(id);
const searchPath = name => `/v1/searches/${encodeURIComponent(name)}`;

async function loadSearches(pick = null) {
  try {
    const res = await apiJson("/v1/searches");
    saved.byName = Object.fromEntries(res.data.map(s => [s.name, s]));
    const select = sEl("saved-select"), was = pick || select.value;
    select.replaceChildren(...(res.count ? res.data.map(s => el("option", { value: s.name }, searchLabel(s)))
                                         : [el("option", { value: "" }, "no saved search yet")]));
    if (Object.hasOwn(saved.byName, was)) select.value = was;
    sEl("saved-run").disabled = sEl("saved-delete").disabled = !res.count;
  } catch (e) {
    setStatus(sEl("saved-status"), e.message, true);
  }
}

function searchLabel(s) {
  const runs = s.runs ? `${s.runs} run${s.runs === 1 ? "" : "s"}` : "never run";
  return `${s.name} · ${s.brand_id || "a new brand"} · k ${s.options.k} (${runs})`;
}

// The brand of the form: a brand of the corpus, or the new brand of the last search (its vectors,
// kept by the server for an hour, are saved with the search).
function savedBrand() {
  if (state.mode === "known") {
    const brand = $("brand").value.trim();
    return brand ? { brand_id: brand } : "Pick a brand first.";
  }
  const id = state.lastQuery && state.lastQuery.queryId;
  return id ? { query_id: id } : "Search for the new brand first: the search saved is that brand's.";
}

async function saveSearch() {
  const name = sEl("search-name").value.trim();
  if (!name) { setStatus(sEl("saved-status"), "Name the search first.", true); return; }
  const f = checkedFilters();
  if (!f) return;
  const brand = savedBrand();
  if (typeof brand === "string") { setStatus(sEl("saved-status"), brand, true); return; }
  const body = { name, ...brand, ...filterBody(f), like: state.like, dislike: state.dislike,
                 replace: saved.replacing === name };
  try {
    const s = await apiJson("/v1/searches", jsonPost(body));
    saved.replacing = "";
    sEl("search-name").value = "";
    await loadSearches(s.name);
    setStatus(sEl("saved-status"), `Saved the search ${s.name}. Run it again from here to see who is new.`);
  } catch (e) {
    saved.replacing = e.status === 409 ? name : "";
    setStatus(sEl("saved-status"), e.status === 409 ? `${e.message} Click “Save this search” again to replace it.`
                                                    : e.message, true);
  }
}

async function runSaved() {
  const name = sEl("saved-select").value;
  if (!name) return;
  const ticket = ++state.latest;  // an earlier search still on its way is dropped
  setStatus(sEl("saved-status"), `Running ${name}…`);
  try {
    const res = await apiJson(`${searchPath(name)}/run`, { method: "POST" });
    if (ticket !== state.latest) return;
    resetFeedback();
    state.rerun = null;  // its options are the saved ones, not the form's
    state.lastHits = res.data;
    const s = Object.hasOwn(saved.byName, name) ? saved.byName[name] : {};
    state.lastQuery = { brand: s.brand_id || null, saved: name };
    for (const h of res.data) state.handles[h.influencer_id] = h.handle;
    $("ranking").textContent = res.ranking ? `Scores: ${res.ranking}` : "";
    showWarnings(res.warnings);
    render(res.data, `Saved search ${name}`);
    markNew(res.data);
    setStatus($("status"), res.count ? `${res.count} influencers, best first.` : "");
    setStatus(sEl("saved-status"), runSummary(res));
    $("export-btn").disabled = !res.count;
    await loadSearches(name);
  } catch (e) {
    if (ticket === state.latest) setStatus(sEl("saved-status"), e.message, true);
  } finally {
    if (ticket === state.latest) $("search-btn").disabled = false;
  }
}

// The new ones' cards get a badge saying why they are new.
function markNew(hits) {
  for (const h of hits.filter(x => x.new)) {
    const top = document.querySelector(`.card[data-influencer="${CSS.escape(h.influencer_id)}"] .top`);
    if (top) top.insertBefore(el("span", { class: "badge new run-new", title: "not in the previous run" }, h.new_reason),
                              top.lastElementChild);
  }
}

function runSummary(res) {
  const prev = res.previous_run;
  if (!prev) return `First run of ${res.name}: nothing to compare with yet; the next run marks who is new.`;
  const count = why => res.data.filter(h => h.new_reason === why).length;
  const fresh = res.data.filter(h => h.new).length;
  const when = new Date(prev.ran_at).toLocaleString();
  const gone = res.gone.length ? ` Gone since (deleted): ${res.gone.join(", ")}.` : "";
  return `${fresh} new since the previous run (${when}): ${count("newly ingested")} newly ingested, ` +
         `${count("moved in")} moved in.${gone}`;
}

async function deleteSaved() {
  const name = sEl("saved-select").value;
  if (!name) return;
  if (!confirm(`Delete the saved search ${name} and its runs?`)) return;
  try {
    await api(searchPath(name), { method: "DELETE" });
    await loadSearches();
    setStatus(sEl("saved-status"), `Deleted the saved search ${name}.`);
  } catch (e) {
    setStatus(sEl("saved-status"), e.message, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  sEl("search-save").addEventListener("click", saveSearch);
  sEl("saved-run").addEventListener("click", runSaved);
  sEl("saved-delete").addEventListener("click", deleteSaved);
  loadSearches();
});
