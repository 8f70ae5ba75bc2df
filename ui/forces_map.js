// VAE Lab Loss forces map: the batch's means, the test codes and each loss term's push as arrows,
// drawn on one canvas that is redrawn in place at every step.
//
// Loaded by ui/stepper_view.py as the inline JS of an st.components.v2 component. It replaced an
// st.plotly_chart whose every new figure was drawn twice (once at the spec's width, once at the
// column's), which put the arrows on screen 400 ms after a click; a canvas redraw takes a few ms.
// data = {key, step, view: [xmin, xmax, ymin, ymax], palette: [...], probe: {x, y, c} (c: class index or -1),
//         mu: {x, y}, arrows: [{name, color, width, alpha, dashed, dx, dy}] (already scaled, drawn in this order; color
//         "text": the theme's text colour, so the sum reads on a dark page too), circles: [1, 2]}
// Test and bench hooks: the root's data-step / data-arrows, and a "vae-forces-drawn" event on document
// ({step, t: performance.now()}) after each draw at the page's width.

const MAPS = new WeakMap();   // parentElement -> map
const HEIGHT = 520, M = { l: 46, r: 10, t: 8, b: 40 };

function node(tag, attrs, parent) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  if (parent) parent.appendChild(e);
  return e;
}

function niceStep(span, target) {
  const raw = span / Math.max(target, 1), p = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / p;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

function textColor(root) {
  const css = getComputedStyle(root);
  return css.getPropertyValue("--st-text-color").trim() || css.color || "#333";
}

function legend(F, data) {
  F.legend.textContent = "";
  const item = (label, draw) => {
    const it = node("span", { class: "vae-forces-item" }, F.legend);
    const sw = node("canvas", { width: 44, height: 14 }, it);
    draw(sw.getContext("2d"));
    node("span", { text: label }, it);
  };
  item("this batch's μ", g => { dot(g, 22, 7, 4.5, "#f28e2b", "#222"); });
  for (const a of data.arrows) {
    item(a.name, g => { g.globalAlpha = a.alpha ?? 1; arrow(g, 4, 7, 40, 7, a.color === "text" ? F.text : a.color, a.width, a.dashed); });
  }
  item("test codes (faint)", g => { g.globalAlpha = 0.35; dot(g, 16, 7, 3, "#888"); dot(g, 28, 7, 3, "#888"); });
}

function dot(g, x, y, r, fill, stroke) {
  g.beginPath(); g.arc(x, y, r, 0, 2 * Math.PI); g.fillStyle = fill; g.fill();
  if (stroke) { g.lineWidth = 1; g.strokeStyle = stroke; g.stroke(); }
}

function arrow(g, x0, y0, x1, y1, color, width, dashed) {
  const dx = x1 - x0, dy = y1 - y0, len = Math.hypot(dx, dy);
  g.strokeStyle = color; g.fillStyle = color; g.lineWidth = width;
  if (len < 1e-6) return;
  const h = Math.min(4 + 1.5 * width, 0.45 * len + 2), ux = dx / len, uy = dy / len;
  const hx = x1 - ux * h, hy = y1 - uy * h, px = -uy * h * 0.45, py = ux * h * 0.45;
  if (dashed) {
    // a dashed shaft and an open head: the arrows it lies on (the sum over the reconstruction push at beta = 1)
    // show between its dashes and inside its head
    g.setLineDash([4, 3]);
    g.beginPath(); g.moveTo(x0, y0); g.lineTo(x1, y1); g.stroke();
    g.setLineDash([]);
    g.beginPath(); g.moveTo(hx + px, hy + py); g.lineTo(x1, y1); g.lineTo(hx - px, hy - py); g.stroke();
    return;
  }
  // the shaft stops inside the head, so a half transparent arrow has no darker overlap
  const back = Math.max(0, len - 0.7 * h);
  g.beginPath(); g.moveTo(x0, y0); g.lineTo(x0 + ux * back, y0 + uy * back); g.stroke();
  g.beginPath(); g.moveTo(x1 + ux * 1.5, y1 + uy * 1.5);
  g.lineTo(hx + px * 0.9, hy + py * 0.9);
  g.lineTo(hx - px * 0.9, hy - py * 0.9);
  g.closePath(); g.fill();
}

function draw(F) {
  const data = F.data, text = F.text;
  const W = Math.max(200, Math.floor(F.root.clientWidth)), H = HEIGHT, dpr = window.devicePixelRatio || 1;
  if (F.canvas.width !== Math.round(W * dpr) || F.canvas.height !== Math.round(H * dpr)) {
    F.canvas.width = Math.round(W * dpr); F.canvas.height = Math.round(H * dpr);
    F.canvas.style.width = W + "px"; F.canvas.style.height = H + "px";
  }
  const g = F.canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, W, H);
  // one scale on both axes (a circle stays a circle): widen whichever range is short for the plot's shape
  const pw = W - M.l - M.r, ph = H - M.t - M.b;
  let [x0, x1, y0, y1] = data.view;
  const s = Math.min(pw / (x1 - x0), ph / (y1 - y0));
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  x0 = cx - pw / s / 2; x1 = cx + pw / s / 2; y0 = cy - ph / s / 2; y1 = cy + ph / s / 2;
  const X = v => M.l + (v - x0) * s, Y = v => M.t + (y1 - v) * s;
  // grid, ticks, axis titles
  g.font = "11px sans-serif"; g.fillStyle = text; g.strokeStyle = text; g.lineWidth = 1;
  const step = niceStep(Math.max(x1 - x0, y1 - y0), 8);
  g.save(); g.globalAlpha = 0.12;
  for (let v = Math.ceil(x0 / step) * step; v <= x1; v += step) { g.beginPath(); g.moveTo(X(v), M.t); g.lineTo(X(v), M.t + ph); g.stroke(); }
  for (let v = Math.ceil(y0 / step) * step; v <= y1; v += step) { g.beginPath(); g.moveTo(M.l, Y(v)); g.lineTo(M.l + pw, Y(v)); g.stroke(); }
  g.restore();
  g.save(); g.globalAlpha = 0.75;
  const label = v => (Math.abs(v) < step / 1e6 ? 0 : +v.toPrecision(6)).toString();
  g.textAlign = "center"; g.textBaseline = "top";
  for (let v = Math.ceil(x0 / step) * step; v <= x1; v += step) g.fillText(label(v), X(v), M.t + ph + 4);
  g.textAlign = "right"; g.textBaseline = "middle";
  for (let v = Math.ceil(y0 / step) * step; v <= y1; v += step) g.fillText(label(v), M.l - 5, Y(v));
  g.restore();
  g.textAlign = "center"; g.textBaseline = "bottom"; g.fillText("z0", M.l + pw / 2, H - 2);
  g.save(); g.translate(12, M.t + ph / 2); g.rotate(-Math.PI / 2); g.textBaseline = "middle"; g.fillText("z1", 0, 0); g.restore();
  g.save();
  g.beginPath(); g.rect(M.l, M.t, pw, ph); g.clip();
  // the prior's 1 and 2 standard deviations
  g.strokeStyle = "rgba(128,128,128,0.9)"; g.lineWidth = 1;
  for (const r of data.circles) {
    g.setLineDash(r === 1 ? [2, 3] : [6, 4]);
    g.beginPath(); g.arc(X(0), Y(0), r * s, 0, 2 * Math.PI); g.stroke();
  }
  g.setLineDash([]);
  // the test images' codes, faint, coloured by class
  const P = data.probe, pal = data.palette;
  g.globalAlpha = 0.3;
  const ok = (...v) => v.every(Number.isFinite);   // null (a NaN in Python) is not drawn
  for (let i = 0; i < P.x.length; i++) if (ok(P.x[i], P.y[i])) dot(g, X(P.x[i]), Y(P.y[i]), 2.5, P.c[i] < 0 ? "#888" : pal[P.c[i] % pal.length]);
  g.globalAlpha = 1;
  // the batch's means, then each push from them
  const mu = data.mu;
  for (let i = 0; i < mu.x.length; i++) if (ok(mu.x[i], mu.y[i])) dot(g, X(mu.x[i]), Y(mu.y[i]), 3.5, "#f28e2b", "#222");
  // in the order given (the reconstruction push, the KL push over it, the thin sum on top): where they overlap,
  // each stays visible
  for (const a of data.arrows) {
    const color = a.color === "text" ? text : a.color;
    g.globalAlpha = a.alpha ?? 1;
    for (let i = 0; i < mu.x.length; i++) {
      if (ok(mu.x[i], mu.y[i], a.dx[i], a.dy[i])) arrow(g, X(mu.x[i]), Y(mu.y[i]), X(mu.x[i] + a.dx[i]), Y(mu.y[i] + a.dy[i]), color, a.width, a.dashed);
    }
  }
  g.globalAlpha = 1;
  g.restore();
  F.root.dataset.step = String(data.step);
  F.root.dataset.arrows = JSON.stringify(Object.fromEntries(data.arrows.map(a => [a.name, a.dx.length])));
  F.root.dataset.draws = String(++F.draws);
  document.dispatchEvent(new CustomEvent("vae-forces-drawn", { detail: { step: data.step, t: performance.now() } }));
}

export default function (args) {
  const { data, parentElement } = args;
  let F = MAPS.get(parentElement);
  if (!F || !F.root.isConnected) {
    const root = node("div", { class: "vae-forces", "data-testid": "vae-forces-map" }, parentElement);
    F = { root, legend: node("div", { class: "vae-forces-legend" }, root), canvas: node("canvas", {}, root),
          draws: 0, width: 0, data };
    F.canvas.setAttribute("role", "img");
    F.observer = new ResizeObserver(() => {
      if (!F.root.isConnected) { F.observer.disconnect(); return; }
      const w = Math.floor(F.root.clientWidth);
      if (w !== F.width) { F.width = w; draw(F); }
    });
    F.observer.observe(root);
    MAPS.set(parentElement, F);
    F.legendKey = null;
  }
  F.data = data;
  F.canvas.setAttribute("aria-label", `Step ${data.step}: ${data.mu.x.length} codes and their pushes`);
  F.text = textColor(F.root);     // called again on a theme change: the legend and axes follow it
  const key = JSON.stringify([F.text, data.arrows.map(a => [a.name, a.color, a.width])]);
  if (key !== F.legendKey) { F.legendKey = key; legend(F, data); }
  F.width = Math.floor(F.root.clientWidth);
  draw(F);
  return () => {};
}
