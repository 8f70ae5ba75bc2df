// VAE Lab drawing pad: draw an input; every stroke re-encodes it in the browser and moves the
// posterior (its point and 1σ/2σ ellipse on the map), the reconstruction and the KL readout.
//
// Loaded by ui/draw_pad.py after ui/nn.js (compileEncoder, compileSpec, f32, ...).
// data = {key, data_id, enc, dec (specs, or headers once the page holds them), label0, class_names,
//         map: {points: [x0, y0, x1, y1, ...], labels: [...] | null, mean: [D] | null,
//               components: [[D], [D]] | null, extent: [xmin, xmax, ymin, ymax]},
//         typical_sigma, width_dims: [dims], image_px, center: bool}
// state "value" = {pixels: [C*S*S] in 0..1, mu, logvar, label, data_id, have: [enc id, dec id]},
// committed when a stroke ends (and on Clear).

const PADS = new WeakMap();  // parentElement -> pad
const PAD_BY_KEY = new Map();
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                 "#9c755f", "#bab0ac"];
const PAD_PX = 280;

function mk(tag, attrs = {}, parent = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v; else if (k === "style") e.style.cssText = v; else e.setAttribute(k, v);
  }
  if (parent) parent.appendChild(e);
  return e;
}

function netFor(spec, compile) {
  if (spec.layers) { const n = compile(spec); NETS.set(spec.id, n); return n; }
  return NETS.get(spec.id) || null;
}

function build(parentElement, data, cb) {
  const root = mk("div", { class: "vae-draw", "data-testid": "vae-draw" }, parentElement);
  const row = mk("div", { class: "vae-draw-row" }, root);
  const left = mk("div", { class: "vae-draw-col" }, row);
  mk("div", { class: "vae-draw-title", text: "Draw here" }, left);
  const pad = mk("canvas", { class: "vae-draw-pad", width: PAD_PX, height: PAD_PX, "data-testid": "vae-draw-pad" }, left);
  const buttons = mk("div", { class: "vae-draw-buttons" }, left);
  const clear = mk("button", { class: "vae-draw-btn", text: "Clear", "data-testid": "vae-draw-clear" }, buttons);
  const mid = mk("div", { class: "vae-draw-col" }, row);
  mk("div", { class: "vae-draw-title", text: "Encoder's input → decoded at μ" }, mid);
  const pair = mk("div", { class: "vae-draw-pair" }, mid);
  const seen = mk("canvas", { class: "vae-draw-img", "data-testid": "vae-draw-input" }, pair);
  const recon = mk("canvas", { class: "vae-draw-img", "data-testid": "vae-draw-recon" }, pair);
  const readout = mk("div", { class: "vae-draw-readout", "data-testid": "vae-draw-readout" }, mid);
  const right = mk("div", { class: "vae-draw-col" }, row);
  mk("div", { class: "vae-draw-title", text: "Posterior on the map" }, right);
  const map = mk("canvas", { class: "vae-draw-map", width: PAD_PX, height: PAD_PX, "data-testid": "vae-draw-map" }, right);
  const P = { root, pad, seen, recon, map, readout, data, cb, lat: [], encodes: 0, pending: null, raf: 0,
              ink: false, label: data.label0 ?? null };
  P.pctx = pad.getContext("2d", { willReadFrequently: true });
  P.pctx.fillStyle = "#000"; P.pctx.fillRect(0, 0, PAD_PX, PAD_PX);
  try {
    P.enc = netFor(data.enc, compileEncoder);
    P.dec = netFor(data.dec, compileSpec);
    if (!P.enc || !P.dec) throw new Error("the page does not hold the networks yet");
  } catch (e) {
    P.failed = true;
    if (!data.enc.layers || !data.dec.layers) {   // headers the page cannot resolve: ask for the weights
      cb.setStateValue("value", { pixels: null, data_id: data.data_id, have: null });
    } else {
      mk("div", { class: "vae-notice", text: `Cannot encode in this browser (${e.message}); the page encodes when you lift the pen.` }, root);
    }
  }
  const S = data.image_size, C = data.channels, k = Math.max(1, Math.round((data.image_px || 140) / S));
  P.S = S; P.C = C; P.k = k;
  for (const c of [seen, recon]) { c.width = S * k; c.height = S * k; }
  P.small = document.createElement("canvas"); P.small.width = S; P.small.height = S;
  P.sctx = P.small.getContext("2d", { willReadFrequently: true });
  P.pixels = new Float32Array(C * S * S);
  const pos = e => { const r = pad.getBoundingClientRect(); return [(e.clientX - r.left) * PAD_PX / r.width, (e.clientY - r.top) * PAD_PX / r.height]; };
  pad.addEventListener("pointerdown", e => {
    pad.setPointerCapture(e.pointerId); P.last = pos(e); P.ink = true; stroke(P, P.last, P.last); request(P, e.timeStamp);
  });
  pad.addEventListener("pointermove", e => {
    if (!P.ink) return;
    const evs = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of (evs.length ? evs : [e])) { const p = pos(ev); stroke(P, P.last, p); P.last = p; }
    request(P, e.timeStamp);
  });
  const end = () => { if (!P.ink) return; P.ink = false; update(P); commit(P); };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
  clear.addEventListener("click", () => {
    P.pctx.fillStyle = "#000"; P.pctx.fillRect(0, 0, PAD_PX, PAD_PX); update(P); commit(P);
  });
  update(P);
  return P;
}

function stroke(P, a, b) {
  const g = P.pctx;
  g.strokeStyle = "#fff"; g.lineWidth = PAD_PX / 28 * 2.2; g.lineCap = "round"; g.lineJoin = "round";
  g.beginPath(); g.moveTo(a[0], a[1]); g.lineTo(b[0], b[1]); g.stroke();
}

function request(P, t) {
  if (P.pending === null) P.pending = t;        // latency counts from the oldest unpainted event
  if (!P.raf) P.raf = requestAnimationFrame(() => { P.raf = 0; update(P); });
}

// The pad -> S x S pixels. With "center" (on for 28x28 digits): like MNIST's own preprocessing, the ink's
// bounding box is scaled to fit a 20/28 box and its centre of mass moved to the middle.
function sample(P) {
  const S = P.S, g = P.sctx, src = P.pctx.getImageData(0, 0, PAD_PX, PAD_PX).data;
  g.fillStyle = "#000"; g.fillRect(0, 0, S, S);
  g.imageSmoothingEnabled = true; g.imageSmoothingQuality = "high";
  let x0 = PAD_PX, y0 = PAD_PX, x1 = -1, y1 = -1;
  for (let y = 0; y < PAD_PX; y++) for (let x = 0; x < PAD_PX; x++) if (src[(y * PAD_PX + x) * 4] > 8) {
    if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  if (x1 < 0) { P.pixels.fill(0); return; }
  if (P.data.center) {
    const bw = x1 - x0 + 1, bh = y1 - y0 + 1, box = S * 20 / 28, s = box / Math.max(bw, bh);
    const dw = bw * s, dh = bh * s;
    g.drawImage(P.pad, x0, y0, bw, bh, (S - dw) / 2, (S - dh) / 2, dw, dh);
    let m = 0, mx = 0, my = 0;
    let img = g.getImageData(0, 0, S, S).data;
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) { const v = img[(y * S + x) * 4]; m += v; mx += v * x; my += v * y; }
    const sx = Math.round((S - 1) / 2 - mx / m), sy = Math.round((S - 1) / 2 - my / m);
    if (sx || sy) {
      const copy = g.getImageData(0, 0, S, S);
      g.fillStyle = "#000"; g.fillRect(0, 0, S, S); g.putImageData(copy, sx, sy);
    }
  } else {
    g.drawImage(P.pad, 0, 0, PAD_PX, PAD_PX, 0, 0, S, S);
  }
  const img = g.getImageData(0, 0, S, S).data;
  for (let c = 0; c < P.C; c++) for (let p = 0; p < S * S; p++) P.pixels[c * S * S + p] = img[p * 4] / 255;
}

function paintImage(canvas, px, C, S, k, hwc) {
  const g = canvas.getContext("2d"), im = g.createImageData(S * k, S * k), d = im.data;
  for (let y = 0; y < S * k; y++) for (let x = 0; x < S * k; x++) {
    const p = ((y / k) | 0) * S + ((x / k) | 0), o = (y * S * k + x) * 4;
    for (let c = 0; c < 3; c++) {
      const cc = C === 1 ? 0 : c, v = hwc ? px[p * C + cc] : px[cc * S * S + p];
      d[o + c] = Math.max(0, Math.min(255, Math.round(v * 255)));
    }
    d[o + 3] = 255;
  }
  g.putImageData(im, 0, 0);
}

function project(P, v) {
  const m = P.data.map;
  if (!m.components) return [v[0], v.length > 1 ? v[1] : 0];
  let a = 0, b = 0;
  for (let j = 0; j < v.length; j++) { const d = v[j] - (m.mean ? m.mean[j] : 0); a += m.components[0][j] * d; b += m.components[1][j] * d; }
  return [a, b];
}

function drawMap(P, mu, sigma) {
  const m = P.data.map, g = P.map.getContext("2d"), w = P.map.width, h = P.map.height, ext = m.extent;
  const X = a => (a - ext[0]) / (ext[1] - ext[0]) * w, Y = b => (ext[3] - b) / (ext[3] - ext[2]) * h;
  if (!P.bg) {   // the test points, drawn once
    P.bg = document.createElement("canvas"); P.bg.width = w; P.bg.height = h;
    const b = P.bg.getContext("2d"), pts = m.points || [];
    b.globalAlpha = 0.55;
    for (let i = 0; i < pts.length / 2; i++) {
      b.fillStyle = m.labels ? PALETTE[m.labels[i] % PALETTE.length] : "#888";
      b.beginPath(); b.arc(X(pts[2 * i]), Y(pts[2 * i + 1]), 2, 0, 2 * Math.PI); b.fill();
    }
  }
  g.clearRect(0, 0, w, h); g.drawImage(P.bg, 0, 0);
  if (!mu) return;
  const c = project(P, mu);
  // the posterior's covariance on the map: C diag(sigma^2) C^T (C = identity for a 2-D latent)
  let a = 0, bb = 0, d = 0;
  if (m.components) {
    for (let j = 0; j < sigma.length; j++) {
      const s2 = sigma[j] * sigma[j], p = m.components[0][j], q = m.components[1][j];
      a += p * p * s2; bb += p * q * s2; d += q * q * s2;
    }
  } else { a = sigma[0] * sigma[0]; d = sigma.length > 1 ? sigma[1] * sigma[1] : 0; }
  const tr = (a + d) / 2, det = Math.sqrt(Math.max(0, ((a - d) / 2) ** 2 + bb * bb));
  const l1 = tr + det, l2 = Math.max(0, tr - det), ang = Math.abs(bb) > 1e-12 ? Math.atan2(l1 - a, bb) : (a >= d ? 0 : Math.PI / 2);
  g.strokeStyle = "#222"; g.lineWidth = 2;
  for (const [k, dash] of [[1, []], [2, [6, 4]]]) {
    g.setLineDash(dash); g.beginPath();
    for (let i = 0; i <= 64; i++) {
      const t = i / 64 * 2 * Math.PI, u = k * Math.sqrt(l1) * Math.cos(t), v = k * Math.sqrt(l2) * Math.sin(t);
      const x = c[0] + u * Math.cos(ang) - v * Math.sin(ang), y = c[1] + u * Math.sin(ang) + v * Math.cos(ang);
      if (i === 0) g.moveTo(X(x), Y(y)); else g.lineTo(X(x), Y(y));
    }
    g.stroke();
  }
  g.setLineDash([]);
  g.fillStyle = "#f28e2b"; g.strokeStyle = "#222"; g.beginPath(); g.arc(X(c[0]), Y(c[1]), 6, 0, 2 * Math.PI); g.fill(); g.stroke();
  P.map.dataset.point = JSON.stringify(c.map(v => +v.toFixed(4)));
}

function update(P) {
  sample(P);
  paintImage(P.seen, P.pixels, P.C, P.S, P.k, false);
  if (P.failed) return;
  const { mu, logvar } = P.enc.encode(P.pixels, P.label);
  const D = mu.length, sigma = new Float64Array(D);
  let kl = 0;
  const kls = [];
  for (let j = 0; j < D; j++) {
    sigma[j] = Math.exp(0.5 * logvar[j]);
    const kj = 0.5 * (mu[j] * mu[j] + sigma[j] * sigma[j] - 1 - logvar[j]);
    kl += kj; kls.push([kj, j]);
  }
  paintImage(P.recon, P.dec.decode(mu, P.label), P.C, P.S, P.k, true);
  drawMap(P, mu, sigma);
  const dims = P.data.width_dims && P.data.width_dims.length ? P.data.width_dims : [...Array(D).keys()];
  const width = dims.reduce((s, j) => s + sigma[j], 0) / dims.length, ratio = width / (P.data.typical_sigma || 1);
  const top = kls.sort((x, y) => y[0] - x[0]).slice(0, 6);
  const note = ratio >= 1.5 ? "a wide posterior: the encoder is unsure where to put this"
    : ratio <= 0.67 ? "narrower than usual (encoders are often over-confident far from their data)" : "about as wide as usual";
  P.readout.innerHTML = "";
  mk("div", { text: `KL ${kl.toFixed(2)} nats · posterior width σ̄ ${width.toFixed(3)} (${ratio.toFixed(1)}× the test median): ${note}` }, P.readout);
  for (const [kj, j] of top) {
    const r = mk("div", { class: "vae-draw-bar" }, P.readout);
    mk("span", { text: `z${j}`, class: "vae-draw-dim" }, r);
    mk("span", { class: "vae-draw-fill", style: `width:${Math.min(100, 12 * kj).toFixed(1)}%` }, r);
    mk("span", { text: kj.toFixed(2), class: "vae-draw-dim" }, r);
  }
  P.mu = Array.from(mu); P.logvar = Array.from(logvar); P.encodes += 1;
  P.readout.dataset.mu = JSON.stringify(P.mu); P.readout.dataset.logvar = JSON.stringify(P.logvar);
  P.readout.dataset.encodes = String(P.encodes);
  if (P.pending !== null) {
    P.lat.push(performance.now() - P.pending); P.pending = null;
    if (P.lat.length > 2000) P.lat.splice(0, 1000);
  }
}

function commit(P) {
  P.cb.setStateValue("value", {
    pixels: Array.from(P.pixels, v => Math.round(v * 1e4) / 1e4), mu: P.mu ?? null, logvar: P.logvar ?? null,
    label: P.label, data_id: P.data.data_id, have: P.failed ? null : [P.data.enc.id, P.data.dec.id] });
}

export default function (args) {
  const { data, parentElement, setStateValue } = args;
  const cb = { setStateValue };
  let P = PADS.get(parentElement);
  const same = P && P.root.isConnected && P.data.data_id === data.data_id && !(P.failed && data.enc.layers);
  if (same) { P.cb = cb; P.data = data; }
  else {
    if (P) P.root.remove();
    P = build(parentElement, data, cb);
    PADS.set(parentElement, P);
  }
  PAD_BY_KEY.set(data.key, P);
  window.__vaeDraw = k => {
    const Q = PAD_BY_KEY.get(k ?? [...PAD_BY_KEY.keys()].pop());
    return Q && {
      // test hook: encode these CHW pixels (0..1) as they are, bypassing the pad's own sampling
      encode(px) { Q.pixels.set(px); const r = Q.enc.encode(Q.pixels, Q.label); return { mu: Array.from(r.mu), logvar: Array.from(r.logvar) }; },
      latencies: () => Q.lat.slice(), encodes: () => Q.encodes, live: () => !Q.failed,
    };
  };
  return () => { if (PAD_BY_KEY.get(data.key) === P) PAD_BY_KEY.delete(data.key); PADS.delete(parentElement); };
}
