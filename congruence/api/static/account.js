// The account view: its metrics and flags, likes over time, engagement rate against followers of its
// peers, and who it worked with (the collaboration graph).
"use strict";

const W = 520, H = 260, PAD = { l: 56, r: 12, t: 10, b: 34 };
const SVG = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

// A linear or log10 scale from [lo, hi] onto [a, b]; one value alone is padded by pad(value).
function scale(values, a, b, log, pad = () => 1) {
  const f = log ? v => Math.log10(v) : v => v;
  const vs = values.map(f);
  let lo = Math.min(...vs), hi = Math.max(...vs);
  if (lo === hi) { const p = pad(lo); lo -= p; hi += p; }
  const s = v => a + ((f(v) - lo) / (hi - lo)) * (b - a);
  s.ticks = () => [lo, (lo + hi) / 2, hi].map(t => (log ? 10 ** t : t));
  return s;
}

// A scatter plot of points {x, y, cls, title} into svg (joined by a line when line); x may be dates (ms).
function scatter(svg, points, { xlog = false, ylog = false, xfmt, yfmt, xlabel, ylabel, line = false,
                                xpad = undefined, ypad = undefined }) {
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  if (!points.length) { svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "axis" }, "no data")); return; }
  const sx = scale(points.map(p => p.x), PAD.l, W - PAD.r, xlog, xpad);
  const sy = scale(points.map(p => p.y), H - PAD.b, PAD.t, ylog, ypad);
  svg.append(svgEl("line", { x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b, class: "axis-line" }),
             svgEl("line", { x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: H - PAD.b, class: "axis-line" }));
  for (const t of sx.ticks()) svg.append(svgEl("text", { x: sx(t), y: H - PAD.b + 14, "text-anchor": "middle", class: "axis" }, xfmt(t)));
  for (const t of sy.ticks()) svg.append(svgEl("text", { x: PAD.l - 4, y: sy(t) + 4, "text-anchor": "end", class: "axis" }, yfmt(t)));
  svg.append(svgEl("text", { x: (PAD.l + W - PAD.r) / 2, y: H - 4, "text-anchor": "middle", class: "axis" }, xlabel),
             svgEl("text", { x: 12, y: H / 2, transform: `rotate(-90 12 ${H / 2})`, "text-anchor": "middle", class: "axis" }, ylabel));
  if (line && points.length > 1)
    svg.append(svgEl("polyline", { class: "trend", fill: "none",
                                   points: points.map(p => `${sx(p.x)},${sy(p.y)}`).join(" ") }));
  for (const p of points) {
    const c = svgEl("circle", { cx: sx(p.x), cy: sy(p.y), r: p.cls.includes("me") ? 6 : 3.5, class: p.cls });
    if (p.id) c.setAttribute("data-id", p.id);
    c.append(svgEl("title", {}, p.title));
    svg.append(c);
  }
}

function tile(label, value, hint) {
  return el("div", { class: "tile", title: hint }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
}

function showMetrics(acc, m) {
  const num = (x, d) => (x === null || x === undefined ? "unknown" : x.toFixed(d));
  $("account-meta").textContent = `${acc.kind} · ${acc.category || "no category"} · ` +
    (acc.followers === null ? "followers unknown" : `${fmt.format(acc.followers)} followers`) +
    (m && m.follower_band ? ` (${m.follower_band})` : "");
  if (!m) { setStatus($("status"), "No metrics yet: run `congruence metrics` (ingest does it)."); return; }
  $("tiles").replaceChildren(
    tile("Engagement rate", percent(m.engagement_rate, 2), `median (likes + comments) / followers over the newest ${m.er_posts} posts`),
    tile("Posts per week", num(m.posts_per_week, 1), `over the newest ${m.last_n} posts with a date`),
    tile("Sponsored share", percent(m.sponsored_share, 0), `paid partnerships among the newest ${m.last_n} posts`),
    tile("Sponsored vs organic", m.sponsored_ratio === null ? "n/a" : `${m.sponsored_ratio.toFixed(2)}×`,
         `median engagement of ${m.sponsored_posts} sponsored over ${m.organic_posts} organic posts`),
    tile("Follower growth", m.growth_monthly === null ? "unknown"
         : `${m.growth_monthly >= 0 ? "+" : ""}${percent(m.growth_monthly, 1)} / month`,
         `compounded monthly over the recent follower history (${m.follower_snapshots} snapshots); ` +
         "unknown without two 7 or more days apart"));
  $("flags").replaceChildren(...(m.flags.length ? m.flags.map(f => el("li", { class: "auth-flags", "data-signal": f.signal },
    `⚑ ${f.signal.replace(/_/g, " ")}: ${f.text}`)) : [el("li", { class: "ok" }, "No authenticity flag raised.")]));
}

const DATED_BY = { ingest: "dated by the ingest", given: "dated by the data", file: "dated by the profile file",
                   posts: "dated by its newest post" };

// Followers over time: each count where it was first and last seen, joined.
function showFollowers(history) {
  const points = history.flatMap(s => [s.at, s.last_seen].filter(Boolean).map((at, i) => ({
    x: Date.parse(at), y: s.followers, cls: "pt",
    title: `${at.slice(0, 10)}: ${fmt.format(s.followers)} followers (${i ? "seen again" : DATED_BY[s.source]})` })));
  $("followers-caption").textContent =
    `Followers over time (${history.length} count${history.length === 1 ? "" : "s"}, ${points.length} sightings)`;
  scatter($("followers-plot"), points, { line: true, xfmt: t => new Date(t).toISOString().slice(0, 10),
                                         yfmt: t => fmt.format(Math.round(t)), xlabel: "date", ylabel: "followers",
                                         xpad: () => 15 * 86400e3, ypad: v => Math.max(Math.abs(v) * 0.05, 1) });
}

function showPlots(data) {
  const likes = data.posts.filter(p => p.ts && p.likes !== null).map(p => ({
    x: Date.parse(p.ts), y: Math.max(p.likes, 1), id: p.post_id, cls: p.sponsored ? "pt sponsored" : "pt",
    title: `${p.post_id}: ${fmt.format(p.likes)} likes, ${p.ts.slice(0, 10)}` }));
  scatter($("likes-plot"), likes, { ylog: true, xfmt: t => new Date(t).toISOString().slice(0, 10),
                                    yfmt: t => fmt.format(Math.round(t)), xlabel: "date", ylabel: "likes" });
  const peers = data.peers.map(p => ({ x: p.followers, y: Math.max(p.engagement_rate, 1e-5), id: p.account_id,
    cls: p.account_id === data.account_id ? "pt me" : "pt", title: `${p.account_id}: ${percent(p.engagement_rate, 2)}, ${fmt.format(p.followers)} followers` }));
  $("peers-caption").textContent = `Engagement rate against followers: ${data.category || "uncategorised"} ${data.kind}s ` +
    `(${data.peers.length} of ${data.peers_total} shown; this account is the large dot)`;
  scatter($("peers-plot"), peers, { xlog: true, ylog: true, xfmt: t => fmt.format(Math.round(t)), yfmt: t => percent(t, 1),
                                    xlabel: "followers", ylabel: "engagement rate" });
}

function $(id) { return document.getElementById(id); }

function accountLink(id, text) { return el("a", { href: `/account?id=${encodeURIComponent(id)}` }, text); }

// Edges as table rows. who "handle": the handle each names (a link when it is an account of the
// store); who "account": the account whose posts name this one (always a link).
function edgeTable(table, edges, who) {
  const day = at => (at ? at.slice(0, 10) : "–");
  const head = el("tr", {}, ...[who === "handle" ? "Handle" : "Account", "Kind", "Posts", "Sponsored", "First", "Last"]
    .map(h => el("th", h === "Posts" || h === "Sponsored" ? { class: "num" } : {}, h)));
  const rows = edges.map(e => el("tr", { "data-kind": e.kind },
    el("td", {}, who === "handle" ? (e.target_id ? accountLink(e.target_id, e.handle) : e.handle)
                                  : accountLink(e.account_id, e.account_id)),
    el("td", {}, e.kind), el("td", { class: "num" }, fmt.format(e.posts)),
    el("td", { class: "num" }, fmt.format(e.sponsored_posts)), el("td", {}, day(e.first_at)), el("td", {}, day(e.last_at))));
  table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  table.hidden = !edges.length;
}

function edgeNote(edges, total, none) {
  if (!total) return none;
  return edges.length < total ? `The ${edges.length} with the most posts of ${fmt.format(total)}.` : "";
}

// Who the account worked with; for a brand (or anyone others tagged) who tagged it, and its known partners.
function showCollaborations(acc) {
  edgeTable($("worked-with"), acc.worked_with, "handle");
  $("worked-with-note").textContent = acc.collaborations
    ? `${fmt.format(acc.collaborations)} handle${acc.collaborations === 1 ? "" : "s"}: tags, paid-partnership ` +
      `sponsors and known matches. ${edgeNote(acc.worked_with, acc.worked_with_total, "")}`
    : "No tag, sponsor or known match recorded.";
  const brand = acc.kind === "brand";
  $("tagged-by-box").hidden = !(brand || acc.tagged_by_total);
  edgeTable($("tagged-by"), acc.tagged_by, "account");
  $("tagged-by-note").textContent = edgeNote(acc.tagged_by, acc.tagged_by_total, "No post of the corpus tags it.");
  $("partners-box").hidden = !(brand || acc.partners_total);
  edgeTable($("partners"), acc.partners, "account");
  $("partners-note").textContent = edgeNote(acc.partners, acc.partners_total, "No known match.");
}

async function loadAccount() {
  const id = new URLSearchParams(location.search).get("id");
  if (!id) { setStatus($("status"), "No account given: open this page from a search result.", true); return; }
  $("account-title").textContent = `@${id}`;
  try {
    const q = encodeURIComponent(id);
    const [acc, data] = await Promise.all([apiJson(`/v1/accounts/${q}?posts=12`), apiJson(`/v1/accounts/${q}/metrics`)]);
    $("account-title").textContent = `@${acc.handle}`;
    showMetrics(acc, data.metrics);
    showCollaborations(acc);
    showFollowers(acc.follower_history);
    showPlots(data);
    $("posts").replaceChildren(...acc.posts.map(p => {
      if (!p.thumbnail_url) return el("div", { class: "noimg", title: p.caption }, "text post");
      const img = el("img", { alt: `post ${p.post_id}`, title: p.caption });
      loadImage(img, p.thumbnail_url);
      return img;
    }));
  } catch (e) {
    setStatus($("status"), e.message, true);
  }
}

document.addEventListener("DOMContentLoaded", loadAccount);
