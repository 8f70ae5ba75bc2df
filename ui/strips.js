// VAE Lab traversal strips: one row per latent dimension, each a strip of images decoded in the browser.
//
// Loaded by ui/strips.py as the inline JS of an st.components.v2 component, after nn.js (the decoder).
// Contract with Python:
//   data = {spec, key, data_id, z0: [D], values: [T], label, cell_px, force_fallback,
//           rows: [{dim, title, detail, muted}]}
//   Row r, cell t is the decoder's image of z0 with z0[rows[r].dim] replaced by values[t].
//   state "value" = {data_id, browser, want}: browser false = this browser cannot decode (Python then
//   decodes the strips itself); want = a spec id whose weights this page lacks (Python sends them again).
//
// Streamlit calls the default export again when `data` (compared as JSON text) or the theme changes: the rows
// are rebuilt then (a few dozen decodes of a small decoder), the compiled decoder is kept per spec id (NETS).

const STRIPS_BY_KEY = new Map();   // user key -> view (test hook)
const STRIPS_ASKED = new Map();    // key -> the spec id whose weights this page asked Python for again
const STRIP_GAP = 3;               // px between cells

function mk(tag, attrs = {}, parent = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v; else if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  if (parent) parent.appendChild(e);
  return e;
}

function stripCommit(V, browser) {
  V.cb.setStateValue("value", { data_id: V.data.data_id, browser, want: STRIPS_ASKED.get(V.data.key) ?? null });
}

function paintRow(V, r) {
  const { net, data, S, C, k } = V, row = data.rows[r], T = data.values.length, canvas = V.canvases[r];
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  const img = ctx.createImageData(w, h), out = img.data, z = Float64Array.from(data.z0);
  for (let t = 0; t < T; t++) {
    z[row.dim] = data.values[t];
    const px = net.decode(z, data.label ?? null), x0 = t * (S * k + STRIP_GAP);
    for (let y = 0; y < S * k; y++) {
      const sy = (y / k) | 0;
      for (let x = 0; x < S * k; x++) {
        const p = (sy * S + ((x / k) | 0)) * C, q = (y * w + x0 + x) * 4;
        const r8 = px[p] * 255;
        out[q] = r8; out[q + 1] = C === 3 ? px[p + 1] * 255 : r8; out[q + 2] = C === 3 ? px[p + 2] * 255 : r8;
        out[q + 3] = 255;
      }
    }
  }
  ctx.putImageData(img, 0, 0);
}

function buildStrips(parentElement, data, cb) {
  const spec = data.spec, S = spec.image_size, C = spec.channels, T = data.values.length;
  const k = Math.max(1, Math.round((data.cell_px || 2 * S) / S));
  const V = { data, cb, S, C, k, net: null, canvases: [], failed: false };
  const root = mk("div", { class: "vae-strips", "data-testid": "vae-strips" });
  V.notice = mk("div", { class: "vae-notice", role: "status" }, root);
  V.notice.hidden = true;
  for (const row of data.rows) {
    const box = mk("div", { class: "vae-strip-row" + (row.muted ? " vae-muted" : ""), "data-dim": row.dim }, root);
    const head = mk("div", { class: "vae-strip-head" }, box);
    mk("span", { class: "vae-strip-title", text: row.title }, head);
    mk("span", { class: "vae-strip-detail", text: row.detail }, head);
    const canvas = mk("canvas", { class: "vae-strip", "data-testid": "vae-strip", "data-dim": row.dim,
                                  width: T * S * k + (T - 1) * STRIP_GAP, height: S * k,
                                  "aria-label": `z${row.dim} from ${data.values[0]} to ${data.values[T - 1]}` }, box);
    V.canvases.push(canvas);
  }
  parentElement.appendChild(root);
  V.root = root;

  const missing = data.force_fallback ? "forced for testing" : missingFeature();
  if (missing) { stripFail(V, `this browser lacks ${missing}`); return V; }
  if (!NETS.has(spec.id) && !spec.layers) {       // a header for weights this page does not hold: ask for them
    V.notice.hidden = false;
    V.notice.textContent = "Loading the decoder\u2026";
    STRIPS_ASKED.set(data.key, spec.id);
    stripCommit(V, true);
    return V;
  }
  try { V.net = getNet(spec); } catch (e) { stripFail(V, e.message); return V; }
  for (let r = 0; r < data.rows.length; r++) paintRow(V, r);
  // they came because this page asked (Python sends them once per session otherwise): say so, and the header follows
  if (spec.layers && STRIPS_ASKED.get(data.key) === spec.id) { STRIPS_ASKED.delete(data.key); stripCommit(V, true); }
  return V;
}

function stripFail(V, why) {
  V.failed = true;
  V.notice.hidden = false;
  V.notice.textContent = `The strips are decoded on the server (${why}).`;
  for (const c of V.canvases) c.hidden = true;
  stripCommit(V, false);
}

// Test hook: what the visible canvas shows at each source pixel's centre, cell by cell:
// {size, channels, cells: [T][S*S*4] RGBA}.
function stripHook(V) {
  return {
    live: () => !!V.net,
    dims: () => V.data.rows.map(r => r.dim),
    values: () => Array.from(V.data.values),
    read(r) {
      if (!V.net) return null;
      const { S, k } = V, canvas = V.canvases[r], all = canvas.getContext("2d").getImageData(0, 0, canvas.width,
        canvas.height).data, cells = [], c = k >> 1;
      for (let t = 0; t < V.data.values.length; t++) {
        const x0 = t * (S * k + STRIP_GAP), cell = new Array(S * S * 4);
        for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
          const src = ((y * k + c) * canvas.width + x0 + x * k + c) * 4, dst = (y * S + x) * 4;
          for (let j = 0; j < 4; j++) cell[dst + j] = all[src + j];
        }
        cells.push(cell);
      }
      return { size: S, channels: V.C, cells };
    },
  };
}

export default function (args) {
  const { data, parentElement, setStateValue } = args;
  // Streamlit calls this again on the same parentElement (a ShadowRoot) when the data change: the old rows go
  for (const old of [...parentElement.children]) if (old.classList.contains("vae-strips")) old.remove();
  const V = buildStrips(parentElement, data, { setStateValue });
  STRIPS_BY_KEY.set(data.key, V);
  window.__vaeStrips = key => (STRIPS_BY_KEY.has(key) ? stripHook(STRIPS_BY_KEY.get(key)) : null);
  window.__vaeStrips.keys = () => [...STRIPS_BY_KEY.keys()];
  return () => { if (STRIPS_BY_KEY.get(data.key) === V) STRIPS_BY_KEY.delete(data.key); V.root.remove(); };
}
