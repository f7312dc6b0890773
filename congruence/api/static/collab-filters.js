// The collaboration filters on the search page (docs/collaborations.md, "Filters"), and the
// warnings an answer carries (a handle nobody tagged, say).
"use strict";

// Handles typed apart by commas, as the API's form fields take them ("Nike Store" is one handle:
// not an Instagram username, compared exactly).
function handleList(text) {
  return text.split(",").map(s => s.trim()).filter(Boolean);
}

function collabFilterValues() {
  const get = id => document.getElementById(id);
  return { worked_with: handleList(get("worked-with").value), not_worked_with: handleList(get("not-worked-with").value),
           since: get("since").value || null, signals: get("signals").value };
}

// signals: what ranks ("all": content and, with known partners, their collaborations; "content").
function collabFilterBody(f) {
  return { worked_with: f.worked_with, not_worked_with: f.not_worked_with, since: f.since, signals: f.signals };
}

// The answer's warnings under the status line (none: the box is emptied and hidden).
function showWarnings(warnings) {
  const box = document.getElementById("warnings");
  box.replaceChildren(...(warnings || []).map(w => el("li", {}, w)));
  box.hidden = !box.childElementCount;
}
