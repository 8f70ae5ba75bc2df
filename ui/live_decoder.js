// VAE Lab latent panel: runs the decoder in the browser and repaints on every input event.
//
// Loaded by ui/live_decoder.py as the inline JS of an st.components.v2 component.
// Contract with Python (vae/export.py describes the spec):
//   data = {spec, key, data_id, mode: "sliders"|"pad", order, z0, label0, class_names,
//           range, image_px, pad_background: {png_b64, extent:[xmin,xmax,ymin,ymax]} | null,
//           force_fallback}
//   state "value" = {z, label, data_id, browser, want}  (set when a drag / change ends;
//   browser: false = cannot decode here, decode on the server; want: a spec id whose weights this page lacks)
//
// The server path (data.server: the decoder does not run in the browser; `spec` then holds
// only the shapes): every move asks Python for a frame with the trigger "frame" = {z, label,
// seq, nonce, data_id}; the answer comes back as data.frame = {z, label, px (base64 uint8
// [S, S(, 3)]), seq, nonce} and is painted. One request is in flight at a time and at most
// data.max_fps a second: a move while one is out only marks the panel dirty, and the newest z
// goes when the answer lands, so stale positions are dropped, never queued. A frame with seq -1
// (a full run's picture of the committed z) is painted only if it shows the z on the sliders.
// A request made while slider d moves also asks for d's strip (strip_dim): when the decoder is
// cheap, Python sends with the answer every position that slider can take (-range..range in its
// own steps) with the other dimensions as they are, and until one of them changes the slider's
// pictures are painted from the strip at once, with no round trip.
//
// Streamlit calls the default export again whenever `data` (compared as its JSON text) or
// the theme changes, on the same parentElement (a ShadowRoot); it does NOT call it on a
// rerun with identical data. So the mount is idempotent: it reuses the panel it built
// before when the data is the same, and the compiled decoder (weights decoded from
// base64, re-laid-out) is cached per spec id for the life of the page.
//
// Painting is throttled with requestAnimationFrame: input events only store the value;
// the next frame decodes the latest z once. data-frames on the image counts paints.

const PANELS = new WeakMap(); // parentElement -> panel
const ASKED = new Map();      // key -> the spec id whose weights this page asked Python for again
const BY_KEY = new Map();     // user key -> panel (test and bench hooks)

// ---------------------------------------------------------------------------------------
// The panel

const fmt = v => (v >= 0 ? "\u2007" : "") + v.toFixed(2);

function el(tag, attrs = {}, parent = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v; else if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  if (parent) parent.appendChild(e);
  return e;
}

function buildPanel(parentElement, data, cb) {
  const spec = data.spec, D = spec.latent_dim, S = spec.image_size, C = spec.channels;
  const order = data.order && data.order.length ? data.order : [...Array(D).keys()];
  const z0 = Float64Array.from(data.z0), z = Float64Array.from(z0), R = data.range;
  const names = data.class_names || [];
  const P = { data, cb, z, label: data.label0, frames: 0, pending: false, net: null, failed: false, path: [], colors: null };
  P.onFrame = () => { P.pending = false; paint(P); }; // one callback for every frame: the latest z is drawn

  const root = el("div", { class: "vae-panel", "data-testid": "vae-latent-panel" });
  const notice = el("div", { class: "vae-notice", role: "status" }, root);
  notice.hidden = true;
  const row = el("div", { class: "vae-row" }, root);
  const controls = el("div", { class: "vae-controls" }, row);
  const fig = el("div", { class: "vae-figure" }, row);

  let select = null;
  if (spec.conditional) {
    const lab = el("label", { class: "vae-class" }, controls);
    el("span", { text: "class" }, lab);
    select = el("select", { "data-testid": "vae-class-select" }, lab);
    for (let k = 0; k < spec.num_classes; k++) el("option", { value: String(k), text: names[k] ?? String(k) }, select);
    select.value = String(P.label ?? 0);
    P.label = +select.value;
    select.addEventListener("change", () => { P.label = +select.value; schedule(P); commit(P); });
  }

  // image: an S x S source canvas drawn nearest-neighbour onto an integer-scaled canvas
  const scale = Math.max(1, Math.round((data.image_px || 224) / S));
  const small = el("canvas", { width: S, height: S });
  const sctx = small.getContext("2d");
  const img = sctx ? sctx.createImageData(S, S) : null;
  const canvas = el("canvas", { class: "vae-image", "data-testid": "vae-live-image", "data-frames": "0",
                                width: S * scale, height: S * scale, "data-scale": scale,
                                "aria-label": "decoded image" }, fig);
  canvas.style.width = `${S * scale}px`;
  const ctx = canvas.getContext("2d");
  Object.assign(P, { root, notice, canvas, ctx, small, sctx, img, select, scale, S, C, order, z0 });

  const sliders = [];
  if (data.mode === "pad") {
    const [xd, yd] = [order[0], order[1] ?? order[0]];
    const ext = (data.pad_background && data.pad_background.extent) || [-R, R, -R, R];
    const padPx = data.image_px ? Math.max(160, Math.min(360, Math.round(data.image_px * 1.25))) : 280;
    const pad = el("canvas", { class: "vae-pad", "data-testid": "vae-latent-pad", width: padPx, height: padPx,
                               "aria-label": `latent pad: z${xd} across, z${yd} up` }, controls);
    const readout = el("div", { class: "vae-readout" }, controls);
    const pctx = pad.getContext("2d");
    let bg = null;
    if (data.pad_background && data.pad_background.png_b64) {
      bg = new Image();
      bg.onload = () => drawPad(P);
      bg.src = "data:image/png;base64," + data.pad_background.png_b64;
    }
    const toLatent = ev => {
      const r = pad.getBoundingClientRect();
      const fx = Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
      const fy = Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height));
      return [ext[0] + fx * (ext[1] - ext[0]), ext[3] - fy * (ext[3] - ext[2])];
    };
    let dragging = false;
    const move = ev => {
      const [a, b] = toLatent(ev);
      z[xd] = a; z[yd] = b;
      P.path.push(a, b);
      if (P.path.length > 8000) P.path.splice(0, P.path.length - 8000);
      schedule(P);
    };
    pad.addEventListener("pointerdown", ev => {
      dragging = true; P.path.length = 0;
      try { pad.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic events */ }
      move(ev); ev.preventDefault();
    });
    pad.addEventListener("pointermove", ev => { if (dragging) move(ev); });
    const end = ev => { if (!dragging) return; dragging = false; move(ev); commit(P); };
    pad.addEventListener("pointerup", end);
    pad.addEventListener("pointercancel", end);
    Object.assign(P, { pad, pctx, bg, ext, xd, yd, readout });
  } else {
    const box = el("div", { class: "vae-sliders", "data-testid": "vae-latent-sliders" }, controls);
    const step = R / 300;
    for (const d of order) {
      const lab = el("label", { class: "vae-slider" }, box);
      el("span", { class: "vae-dim", text: `z${d}` }, lab);
      const inp = el("input", { type: "range", min: -R, max: R, step, "data-dim": d, "aria-label": `z${d}` }, lab);
      inp.value = z[d];
      const out = el("span", { class: "vae-val", text: fmt(z[d]) }, lab);
      inp.addEventListener("input", () => { z[d] = +inp.value; out.textContent = fmt(z[d]); P.moved = d; schedule(P); });
      inp.addEventListener("change", () => { z[d] = +inp.value; commit(P); });
      sliders.push({ d, inp, out });
    }
  }
  P.sliders = sliders;

  const reset = el("button", { type: "button", class: "vae-reset", "data-testid": "vae-reset", text: "Reset" }, controls);
  reset.addEventListener("click", () => {
    z.set(P.z0); P.path.length = 0; // P.z0 / P.data follow a new z0 sent with the same layout
    if (select) { select.value = String(P.data.label0 ?? 0); P.label = +select.value; }
    syncSliders(P); schedule(P); commit(P);
  });

  parentElement.appendChild(root);

  if (data.server) startServer(P);
  else {
    const missing = data.force_fallback ? "forced for testing" : missingFeature();
    if (missing) fallback(P, `this browser lacks ${missing}`); else compile(P);
  }
  if (P.net) paint(P); else if (P.pad) drawPad(P);
  return P;
}

// ---------------------------------------------------------------------------------------
// The server path

function startServer(P) {
  Object.assign(P, { server: true, nonce: Math.random().toString(36).slice(2, 12), seq: 0, painted: -1,
                     out: new Map(), sentAt: -1e9, dirty: false, timer: null, requests: 0, rtt: [],
                     strip: null, moved: null, fromStrip: 0 });
  P.notice.hidden = false;
  P.notice.textContent = P.data.notice;
  P.canvas.hidden = false;
  receive(P, P.data.frame);
}

// Ask for the picture of the z on the sliders now, unless data.in_flight requests are out or the last went less
// than 1 / data.max_fps ago: then remember that the sliders moved (dirty) and ask when an answer lands or the gap
// has passed. An answer cancels every older request still out (their pictures would be stale).
function request(P) {
  const now = performance.now();
  if (P.out.size >= (P.data.in_flight || 1)) { P.dirty = true; return; }
  const wait = 1000 / (P.data.max_fps || 30) - (now - P.sentAt);
  if (wait > 0) {
    P.dirty = true;
    if (!P.timer) P.timer = setTimeout(() => { P.timer = null; if (P.dirty) request(P); }, wait);
    return;
  }
  P.dirty = false;
  const seq = (P.seq += 1);
  P.sentAt = now; P.requests += 1;
  // an answer that never comes (a lost trigger) frees its place after data.timeout_ms
  const watch = setTimeout(() => { if (P.out.delete(seq)) request(P); }, P.data.timeout_ms || 2000);
  P.out.set(seq, { at: now, watch });
  P.cb.setTriggerValue("frame", { z: Array.from(P.z), label: P.label ?? null, seq, nonce: P.nonce,
                                  data_id: P.data.data_id, strip_dim: P.pad ? null : (P.moved ?? null) });
}

// The picture of the z on the sliders from the strip of the slider that moved, if the strip holds it: the same
// other dimensions and label, and a value on the strip's grid (a range input only takes those). True if painted.
function fromStrip(P) {
  const t = P.strip, d = P.moved;
  if (!t || d !== t.dim || (P.label ?? null) !== t.label) return false;
  for (let i = 0; i < P.z.length; i++) if (i !== d && P.z[i] !== t.base[i]) return false;
  const k = Math.round((P.z[d] - t.lo) / t.step);
  if (k < 0 || k >= t.n || Math.abs(t.lo + k * t.step - P.z[d]) > 1e-6 * t.step) return false;
  paintBytes(P, t.px, k * P.S * P.S * P.C);
  P.fromStrip += 1;
  return true;
}

function takeStrip(P, t) {
  if (!t || typeof t.px !== "string") return;
  const bin = atob(t.px), px = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) px[i] = bin.charCodeAt(i);
  P.strip = { dim: t.dim, label: t.label ?? null, base: t.base, lo: t.lo, step: t.step, n: t.n, px };
}                                   // (painted by receive(), with the answer it came with)

function paintBytes(P, px, offset) {
  const d = P.img.data, C = P.C, n = P.S * P.S;
  for (let p = 0; p < n; p++) {
    const r = px[offset + p * C];
    d[4 * p] = r;
    d[4 * p + 1] = C === 3 ? px[offset + p * C + 1] : r;
    d[4 * p + 2] = C === 3 ? px[offset + p * C + 2] : r;
    d[4 * p + 3] = 255;
  }
  blit(P);
}

const sameZ = (f, P) => Array.isArray(f.z) && f.z.length === P.z.length
  && f.z.every((v, i) => Math.abs(v - P.z[i]) < 1e-9) && (f.label ?? null) === (P.label ?? null);

function receive(P, f) {
  if (!f || typeof f.px !== "string") return;
  const answer = f.seq >= 0 && f.nonce === P.nonce;
  if (answer) {
    if (f.seq <= P.painted) return;
    const mine = P.out.get(f.seq);
    if (mine) { P.rtt.push(performance.now() - mine.at); if (P.rtt.length > 500) P.rtt.shift(); }
    for (const [seq, r] of P.out) if (seq <= f.seq) { clearTimeout(r.watch); P.out.delete(seq); }
  } else if (!sameZ(f, P)) { // a full run's picture of another z: ask for the one on the sliders
    request(P);
    return;
  }
  const bin = atob(f.px), px = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) px[i] = bin.charCodeAt(i);
  if (answer) P.painted = f.seq;
  const stripped = fromStrip(P); // a strip that arrived with this answer may hold the sliders' newest z
  if (!stripped) paintBytes(P, px, 0);
  if (P.dirty && !stripped) request(P); // the sliders moved on while this frame was out
  else {
    P.dirty = false;
    // an answer for a z the sliders have left, with no request out that would bring theirs: ask for it, so the
    // last picture is always the panel's own z
    if (!stripped && !sameZ(f, P) && P.out.size === 0) request(P);
  }
}

// Python sends the weights once per session and panel, then only the spec's header (no "layers"). A header for
// weights this page lacks (the page was not drawn with the run that carried them) asks for them again: a commit
// whose "want" is that spec id; once they have come, a second commit stops them. Nothing is committed on a normal
// first view: a commit reruns the page the panel is on.
function compile(P) {
  const spec = P.data.spec, key = P.data.key;
  if (!NETS.has(spec.id) && !spec.layers) {
    P.notice.hidden = false;
    P.notice.textContent = "Loading the decoder\u2026";
    ASKED.set(key, spec.id);
    commit(P);
    return;
  }
  try { P.net = getNet(spec); } catch (e) { fallback(P, e.message); return; }
  P.notice.hidden = true;
  P.canvas.hidden = false;
  if (spec.layers && ASKED.get(key) === spec.id) { ASKED.delete(key); commit(P); }
}

function fallback(P, why) {
  P.net = null;
  P.failed = true;
  P.notice.hidden = false;
  P.notice.textContent = `Live decoding is off (${why}): the image is decoded on the server when you release.`;
  P.canvas.hidden = true;
  commit(P);
}

function syncSliders(P) {
  for (const s of P.sliders) { s.inp.value = P.z[s.d]; s.out.textContent = fmt(P.z[s.d]); }
}

function schedule(P) {
  if (P.server) { if (!fromStrip(P)) request(P); if (P.pad) drawPad(P); return; }
  if (!P.net) { if (P.pad) drawPad(P); return; }
  if (P.pending) return;
  P.pending = true;
  requestAnimationFrame(P.onFrame);
}

function paint(P) {
  const px = P.net.decode(P.z, P.label), d = P.img.data, C = P.C, n = P.S * P.S;
  for (let p = 0; p < n; p++) {
    const r = px[p * C] * 255;
    d[4 * p] = r;
    d[4 * p + 1] = C === 3 ? px[p * C + 1] * 255 : r;
    d[4 * p + 2] = C === 3 ? px[p * C + 2] * 255 : r;
    d[4 * p + 3] = 255;
  }
  blit(P);
}

function blit(P) { // the S x S picture in P.img onto the visible canvas, scaled nearest-neighbour
  P.sctx.putImageData(P.img, 0, 0);
  P.ctx.imageSmoothingEnabled = false;
  P.ctx.drawImage(P.small, 0, 0, P.canvas.width, P.canvas.height);
  P.frames += 1;
  P.canvas.setAttribute("data-frames", String(P.frames));
  if (P.pad) drawPad(P);
}

function drawPad(P) {
  const { pad, pctx: g, ext, z, xd, yd } = P, w = pad.width, h = pad.height;
  if (!P.colors) { // theme colours, read once per mount (the JS is called again on a theme change)
    const cs = getComputedStyle(pad);
    P.colors = { fg: cs.getPropertyValue("--st-primary-color").trim() || "#ff4b4b", ink: cs.color || "#888" };
  }
  const { fg, ink } = P.colors;
  g.clearRect(0, 0, w, h);
  if (P.bg && P.bg.complete && P.bg.naturalWidth) { g.imageSmoothingEnabled = false; g.drawImage(P.bg, 0, 0, w, h); }
  const X = a => (a - ext[0]) / (ext[1] - ext[0]) * w, Y = b => (ext[3] - b) / (ext[3] - ext[2]) * h;
  g.globalAlpha = 0.35; g.strokeStyle = ink; g.lineWidth = 1; g.beginPath(); // axes through 0
  if (ext[0] < 0 && ext[1] > 0) { g.moveTo(X(0), 0); g.lineTo(X(0), h); }
  if (ext[2] < 0 && ext[3] > 0) { g.moveTo(0, Y(0)); g.lineTo(w, Y(0)); }
  g.stroke(); g.globalAlpha = 1;
  const path = P.path;
  if (path.length >= 4) {
    g.strokeStyle = fg; g.lineWidth = 2; g.lineJoin = "round"; g.beginPath();
    g.moveTo(X(path[0]), Y(path[1]));
    for (let i = 2; i < path.length; i += 2) g.lineTo(X(path[i]), Y(path[i + 1]));
    g.stroke();
  }
  g.fillStyle = fg; g.strokeStyle = "#fff"; g.lineWidth = 2; g.beginPath();
  g.arc(X(z[xd]), Y(z[yd]), 6, 0, 2 * Math.PI); g.fill(); g.stroke();
  P.readout.textContent = `z${xd} = ${z[xd].toFixed(2)}, z${yd} = ${z[yd].toFixed(2)}`;
}

function commit(P) {
  P.cb.setStateValue("value", { z: Array.from(P.z), label: P.label ?? null, data_id: P.data.data_id,
                                 browser: !P.failed, want: ASKED.get(P.data.key) ?? null });
}

// Test/bench hook: set z (and label), paint synchronously, and read back what the visible
// canvas shows at each source pixel's centre: {size, channels, rgba: [S*S*4]}.
function hook(P) {
  return {
    frames: () => P.frames,
    live: () => !!P.net,
    server: () => !!P.server,
    requests: () => P.requests || 0,
    fromStrip: () => P.fromStrip || 0, // pictures painted from a slider's strip (no round trip)
    roundTrips: () => (P.rtt || []).slice(), // ms from each answered request to its picture arriving
    z: () => Array.from(P.z),
    label: () => P.label ?? null,
    decode(zs, label) {
      for (let i = 0; i < P.z.length; i++) P.z[i] = zs[i];
      if (label !== undefined && label !== null && P.select) { P.label = label; P.select.value = String(label); }
      syncSliders(P);
      if (P.server) { schedule(P); return null; } // the answer is painted when it comes back
      if (!P.net) return null;
      paint(P);
      return this.read();
    },
    read() {
      if (!P.net && !P.server) return null;
      const S = P.S, k = P.scale, all = P.ctx.getImageData(0, 0, S * k, S * k).data, rgba = new Array(S * S * 4);
      const c = k >> 1;
      for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
        const src = ((y * k + c) * S * k + x * k + c) * 4, dst = (y * S + x) * 4;
        for (let j = 0; j < 4; j++) rgba[dst + j] = all[src + j];
      }
      return { size: S, channels: P.C, rgba };
    },
    timeDecode(n) { // ms per decode, for the bench
      const t0 = performance.now();
      for (let i = 0; i < n; i++) P.net.decode(P.z, P.label);
      return (performance.now() - t0) / n;
    },
  };
}

const sameLayout = (a, b) => {
  const strip = d => JSON.stringify({ ...d, spec: d.spec && (d.spec.id ?? d.spec), z0: null, label0: null,
                                       data_id: null, frame: null });
  return strip(a) === strip(b);
};

export default function (args) {
  const { data, parentElement, setStateValue, setTriggerValue } = args;
  const cb = { setStateValue, setTriggerValue };
  let P = PANELS.get(parentElement);
  if (P && P.root.isConnected && sameLayout(P.data, data)) {
    // theme change or new z0 for the same decoder and layout: keep the DOM
    P.cb = cb;
    P.colors = null;
    const z0Changed = JSON.stringify(P.data.z0) !== JSON.stringify(data.z0) || P.data.label0 !== data.label0;
    P.data = data;
    const hadNet = !!P.net;
    if (!P.net && !P.failed && !P.server) compile(P);
    if (z0Changed) {
      P.z0 = Float64Array.from(data.z0); P.z.set(P.z0); P.path.length = 0;
      if (P.select) { P.select.value = String(data.label0 ?? 0); P.label = +P.select.value; }
      syncSliders(P);
    }
    // the weights -> header switch after a commit changes nothing visible: no repaint
    if (P.server) receive(P, data.frame);
    if (z0Changed || (P.net && !hadNet)) schedule(P); else if (P.pad) drawPad(P);
  } else {
    if (P) P.root.remove();
    P = buildPanel(parentElement, data, cb);
    PANELS.set(parentElement, P);
  }
  BY_KEY.set(data.key, P);
  window.__vaeLab = window.__vaeLab || { panel: k => (BY_KEY.has(k) ? hook(BY_KEY.get(k)) : null) };
  window.__vaeLab.panel = k => (BY_KEY.has(k) ? hook(BY_KEY.get(k)) : null);
  window.__vaeLab.keys = () => [...BY_KEY.keys()];
  window.__vaeLab.deliver = (key, f, strip) => {
    const Q = BY_KEY.get(key);
    if (Q && Q.server) { if (strip && strip.nonce === Q.nonce) takeStrip(Q, strip); if (f) receive(Q, f); }
  };
  window.__vaeDecode = (zs, label, key) => hook(BY_KEY.get(key ?? [...BY_KEY.keys()].pop())).decode(zs, label);
  return () => { if (BY_KEY.get(data.key) === P) BY_KEY.delete(data.key); PANELS.delete(parentElement); };
}
