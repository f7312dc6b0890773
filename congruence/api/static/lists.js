// Campaign lists on the search page (docs/lists.md): "Add to list" on each card, a list panel to
// change status and note (a stale edit is refused and shows the current entry), the list filter
// of the search form ("Leave out list … with status"), and the list's export.
"use strict";

const LIST_STORE = "congruence.list";
const STATUSES = ["prospect", "contacted", "agreed", "declined", "posted"];
const lists = { names: [], current: localStorage.getItem(LIST_STORE) || "" };
const byId = id => document.getElementById(id);
const listPath = name => `/v1/lists/${encodeURIComponent(name)}`;

function listFilterValues() {
  const excluded = byId("exclude-list").value.trim();
  const statuses = Array.from(byId("exclude-status").selectedOptions).map(o => o.value);
  return { exclude_list: excluded || null, exclude_status: excluded ? statuses : [] };
}

function listFilterBody(f) {
  return { exclude_list: f.exclude_list, exclude_status: f.exclude_status };
}

// What a card shows of the lists: the brand's lists holding it, and the button that adds it.
function listControls(h) {
  const held = (h.in_lists || []).map(o => `${o.list}: ${o.status}`).join(", ");
  return el("div", { class: "lists" },
    held ? el("span", { class: "in-lists", title: "already in these lists of the brand" }, `in ${held}`) : null,
    el("button", { type: "button", class: "plain add-to-list", "aria-label": `Add @${h.handle} to the list`,
                   onclick: () => addToList(h) }, "Add to list"));
}

async function loadLists() {
  try {
    const res = await apiJson("/v1/lists");
    lists.names = res.data.map(l => l.name);
    const pick = byId("list-select");
    pick.replaceChildren(el("option", { value: "" }, res.count ? "choose a list" : "no list yet"),
                         ...res.data.map(l => el("option", { value: l.name }, `${l.name} · ${l.brand_id} (${l.entries})`)));
    byId("exclude-list-names").replaceChildren(...lists.names.map(n => el("option", { value: n })));
    if (!lists.names.includes(lists.current)) lists.current = "";
    pick.value = lists.current;
    await showList();
  } catch (e) {
    setStatus(byId("list-status"), e.message, true);
  }
}

function chooseList(name) {
  lists.current = name;
  localStorage.setItem(LIST_STORE, name);
  return showList();
}

async function createList() {
  const name = byId("list-name").value.trim(), brand = byId("brand").value.trim();
  if (!name) { setStatus(byId("list-status"), "Name the new list first.", true); return; }
  if (!brand) { setStatus(byId("list-status"), "Pick the brand of the new list in the brand field first.", true); return; }
  try {
    await apiJson("/v1/lists", jsonBody("POST", { name, brand_id: brand }));
    byId("list-name").value = "";
    lists.current = name;
    localStorage.setItem(LIST_STORE, name);
    await loadLists();
    setStatus(byId("list-status"), `Created the list ${name} of ${brand}.`);
  } catch (e) {
    setStatus(byId("list-status"), e.message, true);
  }
}

async function addToList(h) {
  if (!lists.current) { setStatus(byId("list-status"), "Choose or create a list first.", true); return; }
  try {
    const res = await apiJson(`${listPath(lists.current)}/entries`, jsonBody("POST", { influencer_ids: [h.influencer_id] }));
    setStatus(byId("list-status"), res.added.length ? `Added @${h.handle} to ${lists.current}.`
                                                   : `@${h.handle} is already in ${lists.current}.`);
    await showList();
  } catch (e) {
    setStatus(byId("list-status"), e.message, true);
  }
}

async function showList() {
  const body = byId("list-entries");
  body.replaceChildren();
  byId("list-export").disabled = !lists.current;
  if (!lists.current) return;
  const res = await apiJson(listPath(lists.current));
  for (const e of res.data) body.append(entryRow(e));
  byId("list-count").textContent = `${res.count} in ${res.list.name} (brand ${res.list.brand_id})`;
  const option = Array.from(byId("list-select").options).find(o => o.value === res.list.name);
  if (option) option.textContent = `${res.list.name} · ${res.list.brand_id} (${res.count})`;
}

function entryRow(e) {
  const status = el("select", { "aria-label": `status of ${e.influencer_id}` },
                    ...STATUSES.map(s => el("option", { value: s, selected: s === e.status }, s)));
  const note = el("input", { type: "text", value: e.note, "aria-label": `note on ${e.influencer_id}` });
  const others = e.other_lists.map(o => `${o.list}: ${o.status}`).join(", ");
  const row = el("tr", { "data-influencer": e.influencer_id, "data-version": String(e.version) },
    el("td", {}, e.handle ? `@${e.handle}` : e.influencer_id, e.gone ? el("span", { class: "gone" }, " (deleted)") : null),
    el("td", {}, status), el("td", {}, note), el("td", { class: "hint" }, others || "–"),
    el("td", {}, el("button", { type: "button", class: "plain", onclick: () => saveEntry(row, e, status.value, note.value) },
                    "Save")));
  return row;
}

// A change carries the version it was read at: another person's change since is refused (409),
// and the row then shows the entry as it is now.
async function saveEntry(row, e, status, note) {
  try {
    const path = `${listPath(lists.current)}/entries/${encodeURIComponent(e.influencer_id)}`;
    const now = await apiJson(path, jsonBody("PATCH", { status, note, version: e.version }));
    row.replaceWith(entryRow(now));
    setStatus(byId("list-status"), `Saved: @${now.handle || now.influencer_id} is ${now.status}.`);
  } catch (err) {
    if (err.status !== 409) { setStatus(byId("list-status"), err.message, true); return; }
    const current = err.body.current;
    row.replaceWith(entryRow(current));
    setStatus(byId("list-status"), `Not saved: ${current.updated_by} changed @${current.handle || current.influencer_id} ` +
                                   `meanwhile (now ${current.status}). Change it again if you still want to.`, true);
  }
}

async function exportList() {
  try {
    const resp = await api(`${listPath(lists.current)}/export?format=csv`);
    saveBlob(await resp.blob(), `${lists.current}.csv`);
  } catch (e) {
    setStatus(byId("list-status"), e.message, true);
  }
}

function jsonBody(method, body) {
  return { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
}

document.addEventListener("DOMContentLoaded", () => {
  byId("list-select").addEventListener("change", ev => chooseList(ev.target.value));
  byId("list-create").addEventListener("click", createList);
  byId("list-export").addEventListener("click", exportList);
  loadLists();
});
