// Account metrics on the search page: the filters, the line on each card, the link to the account view.
"use strict";

// The metric filters as the API takes them: rates as fractions (the inputs are percents).
function metricFilterValues() {
  const get = id => document.getElementById(id);
  const num = id => (get(id).value.trim() === "" ? null : Number(get(id).value));
  const pct = id => (num(id) === null ? null : num(id) / 100);
  return { min_er: pct("min-er"), max_er: pct("max-er"), max_sponsored_share: pct("max-sponsored"),
           min_posts_per_week: num("min-ppw"), min_growth: pct("min-growth"), max_growth: pct("max-growth"),
           no_flags: get("no-flags").checked };
}

function metricFilterBody(f) {
  return { min_er: f.min_er, max_er: f.max_er, max_sponsored_share: f.max_sponsored_share,
           min_posts_per_week: f.min_posts_per_week, min_growth: f.min_growth, max_growth: f.max_growth,
           no_flags: f.no_flags };
}

function percent(x, digits = 1) { return x === null || x === undefined ? "?" : `${(100 * x).toFixed(digits)} %`; }

// "ER 3.1 % · 2.5 posts/week · 8 % sponsored" and, when raised, the authenticity flags.
function metricsLine(h) {
  const m = h.metrics;
  const link = el("a", { class: "account-link", href: `/account?id=${encodeURIComponent(h.influencer_id)}` },
                  "Account →");
  if (!m) return el("div", { class: "metrics" }, "no metrics yet ", link);
  const parts = [`ER ${percent(m.engagement_rate)}`];
  if (m.posts_per_week !== null) parts.push(`${m.posts_per_week.toFixed(1)} posts/week`);
  if (m.sponsored_share !== null) parts.push(`${percent(m.sponsored_share, 0)} sponsored`);
  if (m.growth_monthly !== null && m.growth_monthly !== undefined)
    parts.push(`${m.growth_monthly >= 0 ? "+" : ""}${percent(m.growth_monthly)}/month followers`);
  const flags = m.flags.length ? el("div", { class: "auth-flags", title: m.flags.map(f => f.text).join("\n") },
    `⚑ ${m.flags.map(f => f.signal.replace(/_/g, " ")).join(", ")}`) : null;
  return el("div", { class: "metrics", title: `engagement rate: median over the newest ${m.er_posts} posts` },
            parts.join(" · "), " ", link, flags);
}
