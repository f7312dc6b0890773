// The engagement page: up to 5 images (+ captions) -> ranked scores 0-10 with suggestions.
"use strict";

const $ = id => document.getElementById(id);
const MAX = 5;
let chosen = [];  // [{file, url, caption}]

function addFiles(files) {
  const images = [...files].filter(f => f.type.startsWith("image/") || f.type === "");
  const room = MAX - chosen.length;
  if (images.length > room) setStatus($("status"), `Only ${MAX} images at a time: kept the first ${room} of those.`, true);
  else setStatus($("status"), "");
  for (const file of images.slice(0, Math.max(0, room))) chosen.push({ file, url: URL.createObjectURL(file), caption: "" });
  drawPending();
}

function drawPending() {
  const box = $("pending");
  box.replaceChildren(...chosen.map((c, i) => el("figure", {},
    el("img", { src: c.url, alt: c.file.name }),
    el("input", { type: "text", placeholder: "caption (optional)", value: c.caption,
                  oninput: e => { chosen[i].caption = e.target.value; } }))));
  $("score-btn").disabled = chosen.length === 0;
}

async function rank() {
  const form = new FormData();
  chosen.forEach((c, i) => {
    form.append("images", c.file, c.file.name);
    if (c.caption.trim()) form.append(`caption${i}`, c.caption.trim());
  });
  $("score-btn").disabled = true;
  setStatus($("status"), `Scoring ${chosen.length} image${chosen.length > 1 ? "s" : ""}…`);
  try {
    const res = await apiJson("/v1/score", { method: "POST", body: form });
    $("scores").replaceChildren(...res.data.map(s => row(s)));
    showBasis(res.basis);
    setStatus($("status"), res.count > 1 ? `Image ${res.data[0].index + 1} (${res.data[0].filename}) is expected to get the most attention.` : "Scored.");
  } catch (e) {
    const message = e.status === 404 ? "No engagement model is trained yet. Run `congruence engagement train` on your corpus, then try again." : e.message;
    setStatus($("status"), message, true);
  } finally {
    $("score-btn").disabled = chosen.length === 0;
  }
}

// A suggestion comes with its evidence; without one, the sentence saying why.
function suggestionsOf(s) {
  if (!s.suggestions.length) return el("p", { class: "hint no-suggestion" }, s.suggestion_note);
  return el("ul", { class: "suggestions hint", style: "margin:.3rem 0 0 1rem;padding:0" },
    ...s.suggestions.map(g => el("li", { "data-concept": g.concept },
      el("strong", {}, g.kind === "property" ? `Try ${g.label}: ` : `Try adding ${g.label}: `), `${g.text}.`)));
}

function row(s) {
  return el("article", { class: "scored", "data-index": s.index },
    el("div", { class: "place" }, `${s.rank}`),
    el("img", { src: chosen[s.index].url, alt: s.filename }),
    el("div", {},
      el("div", { class: "value" }, `${s.score.toFixed(1)} / 10`),
      el("div", { class: "bar" }, el("div", { style: `width:${s.score * 10}%` })),
      el("p", { class: "hint", style: "margin-bottom:0" }, s.filename),
      suggestionsOf(s)));
}

function showBasis(basis, evidence) {
  $("basis").hidden = false;
  $("basis-text").textContent = basis.sentence;
  if (evidence === undefined) {  // from a scoring answer: names only, unless the page loaded the details
    if (!$("evidence-text").textContent) {
      $("evidence-text").textContent = basis.concepts_qualified.length
        ? `Concepts whose effect held up on held-out accounts: ${basis.concepts_qualified.join(", ")}.`
        : nothingHeldUp(basis);
    }
    return;
  }
  const good = evidence.filter(e => e.qualified);
  $("evidence-text").textContent = good.length
    ? `Concepts whose effect held up on held-out accounts (lift on the account's scale, 95 % interval): ` +
      good.map(e => `${e.name} ${signed(e.lift)} (${signed(e.ci95[0])} to ${signed(e.ci95[1])}; ` +
                    `${e.posts.toLocaleString("en")} posts, ${e.accounts.toLocaleString("en")} accounts)`).join(", ") + "."
    : nothingHeldUp(basis);
}

function nothingHeldUp(basis) {
  return `No concept's effect on engagement held up on the accounts held out from training ` +
    `(${basis.concepts_screened.toLocaleString("en")} looked at on the training accounts, ` +
    `${basis.concepts_tested} strong enough there to be tested), so nothing is suggested.`;
}

function signed(v) { return (v >= 0 ? "+" : "") + v.toFixed(2); }

async function loadBasis() {
  try {
    const res = await apiJson("/v1/score/model");
    showBasis(res.basis, res.evidence);
  } catch (e) {
    if (e.status !== 404) return;  // no key yet, or the server is gone: the search says so when it runs
    $("basis").hidden = false;
    $("basis-text").textContent = "No engagement model is trained yet: run `congruence engagement train` on your corpus.";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const drop = $("drop");
  $("files").addEventListener("change", e => { addFiles(e.target.files); e.target.value = ""; });
  drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", e => { e.preventDefault(); drop.classList.remove("over"); addFiles(e.dataTransfer.files); });
  $("score-btn").addEventListener("click", rank);
  loadBasis();
  $("clear-btn").addEventListener("click", () => { chosen = []; drawPending(); $("scores").replaceChildren(); setStatus($("status"), ""); });
});
