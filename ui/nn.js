// VAE Lab's forward passes in the browser: the decoder (compileSpec) and the encoder (compileEncoder)
// from the JSON specs vae/export.py writes. Python prepends this file to each component's own JS
// (ui/live_decoder.js, ui/draw_pad.js), so both pages' components share one implementation.

const NETS = new Map();       // spec id -> compiled network

// ---------------------------------------------------------------------------------------
// The forward pass. Internal layout after "unflatten" is channels-last (HWC), so a pixel's
// channels are contiguous. Every layer with weights is a matrix-vector product over the
// input's non-zero entries (matvec below); weights are re-laid-out once at compile time
// and activations are float32 arrays allocated then too: decode() allocates nothing.
// Measured (node 20, this 2-core box, busy): the 32-D conv decoder (fc 256, 64x7x7,
// 32x14x14, 1x28x28; 2.5 M multiply-adds) decodes in about 3 ms, the naive loops took 12.

function f32(b64, n, what) {
  const bin = atob(b64);
  if (bin.length !== 4 * n) throw new Error(`${what}: ${bin.length / 4} floats, expected ${n}`);
  const u8 = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
  return new Float32Array(u8.buffer); // little-endian, as written by vae/export.py
}

const ACTS = {
  relu: () => (x, n) => { for (let i = 0; i < n; i++) if (x[i] < 0) x[i] = 0; },
  leaky_relu: L => { const s = L.slope ?? 0.01; return (x, n) => { for (let i = 0; i < n; i++) if (x[i] < 0) x[i] *= s; }; },
  elu: L => { const a = L.alpha ?? 1; return (x, n) => { for (let i = 0; i < n; i++) { const v = x[i]; if (v < 0) x[i] = a * Math.expm1(v); } }; },
  silu: () => (x, n) => { for (let i = 0; i < n; i++) { const v = x[i]; x[i] = v / (1 + Math.exp(-v)); } },
  sigmoid: () => (x, n) => { for (let i = 0; i < n; i++) x[i] = 1 / (1 + Math.exp(-x[i])); },
};

// y[off + o] = B[o] + sum_k W[o, idx_k] * val_k over a compacted list of the input's
// non-zero entries (ReLU leaves about half of them zero). With 4+ outputs the rows are
// interleaved in blocks of 4 so one pass over the list feeds 4 accumulators.
function matvec(W, B, O, I) {
  if (O < 4) {
    return {
      scale: 1,
      run(nzI, nzV, n, y, off) {
        for (let o = 0; o < O; o++) {
          let acc = B[o];
          const base = o * I;
          for (let k = 0; k < n; k++) acc += W[base + nzI[k]] * nzV[k];
          y[off + o] = acc;
        }
      },
    };
  }
  const O4 = (O + 3) & ~3, Wi = new Float32Array(O4 * I), Bp = new Float32Array(O4);
  for (let o = 0; o < O; o++) {
    Bp[o] = B[o];
    for (let i = 0; i < I; i++) Wi[((o >> 2) * I + i) * 4 + (o & 3)] = W[o * I + i];
  }
  return {
    scale: 4,
    run(nzI, nzV, n, y, off) {
      for (let ob = 0; ob < O4; ob += 4) {
        let a0 = Bp[ob], a1 = Bp[ob + 1], a2 = Bp[ob + 2], a3 = Bp[ob + 3];
        const p0 = ob * I;
        for (let k = 0; k < n; k++) {
          const p = p0 + nzI[k], v = nzV[k];
          a0 += Wi[p] * v; a1 += Wi[p + 1] * v; a2 += Wi[p + 2] * v; a3 += Wi[p + 3] * v;
        }
        const q = off + ob;
        if (ob + 4 <= O) { y[q] = a0; y[q + 1] = a1; y[q + 2] = a2; y[q + 3] = a3; }
        else { y[q] = a0; if (ob + 1 < O) y[q + 1] = a1; if (ob + 2 < O) y[q + 2] = a2; }
      }
    },
  };
}

// A "linear" layer reading x: pushes its op (over x's non-zero entries) and returns its output array.
function linearOp(L, x, ops) {
  const I = L.in, O = L.out, mv = matvec(f32(L.weight, I * O, "linear weight"), f32(L.bias, O, "linear bias"), O, I);
  const y = new Float32Array(O), nzI = new Int32Array(I), nzV = new Float64Array(I), sc = mv.scale;
  ops.push(() => {
    let n = 0;
    for (let i = 0; i < I; i++) { const v = x[i]; if (v !== 0) { nzI[n] = i * sc; nzV[n++] = v; } }
    mv.run(nzI, nzV, n, y, 0);
  });
  return y;
}

export function compileSpec(spec) {
  if (!spec || spec.version !== 1) throw new Error(`spec version ${spec && spec.version} is not 1`);
  const D = spec.latent_dim, K = spec.conditional ? spec.num_classes : 0;
  const input = new Float32Array(D + K);
  let cur = input, shape = [D + K]; // shape: [n] flat, or [h, w, c] channels-last
  const ops = [];
  for (const L of spec.layers) {
    const t = L.type;
    if (t === "linear") {
      if (shape.length !== 1 || shape[0] !== L.in) throw new Error(`linear expects ${L.in} inputs, gets [${shape}]`);
      cur = linearOp(L, cur, ops); shape = [L.out];
    } else if (t in ACTS) {
      const f = ACTS[t](L), x = cur, n = cur.length;
      ops.push(() => f(x, n));
    } else if (t === "unflatten") {
      const [c, h, w] = L.shape;
      if (shape.length !== 1 || shape[0] !== c * h * w) throw new Error(`unflatten to [${L.shape}] from [${shape}]`);
      const x = cur, y = new Float32Array(c * h * w), hw = h * w;
      ops.push(() => { // CHW (torch) -> HWC
        for (let ch = 0; ch < c; ch++) for (let p = 0; p < hw; p++) y[p * c + ch] = x[ch * hw + p];
      });
      cur = y; shape = [h, w, c];
    } else if (t === "convtranspose2d") {
      if (L.k !== 4 || L.stride !== 2 || L.pad !== 1) throw new Error("convtranspose2d other than k=4 s=2 p=1");
      if (shape.length !== 3 || shape[2] !== L.in) throw new Error(`convtranspose2d expects ${L.in} channels, gets [${shape}]`);
      const [h, w] = shape, CI = L.in, CO = L.out, H2 = 2 * h, W2 = 2 * w;
      const Wt = f32(L.weight, CI * CO * 16, "conv weight"), B = f32(L.bias, CO, "conv bias");
      // Scatter form: input pixel (iy, ix) adds x[iy, ix, :] . W[:, o, ky, kx] to output
      // (2*iy - 1 + ky, 2*ix - 1 + kx, o). Per input pixel that is one matrix [16*CO, CI]
      // (rows ordered ky, kx, o) times its channel vector, whose zeros are skipped once.
      const R = 16 * CO, Wr = new Float32Array(R * CI);
      for (let i = 0; i < CI; i++) for (let o = 0; o < CO; o++) for (let k = 0; k < 16; k++)
        Wr[(k * CO + o) * CI + i] = Wt[(i * CO + o) * 16 + k];
      const mv = matvec(Wr, new Float32Array(R), R, CI), sc = mv.scale;
      const x = cur, y = new Float32Array(H2 * W2 * CO), t = new Float32Array(R);
      const nzI = new Int32Array(CI), nzV = new Float64Array(CI);
      ops.push(() => {
        for (let p = 0; p < H2 * W2; p++) for (let o = 0; o < CO; o++) y[p * CO + o] = B[o];
        for (let iy = 0; iy < h; iy++) for (let ix = 0; ix < w; ix++) {
          const src = (iy * w + ix) * CI;
          let n = 0;
          for (let i = 0; i < CI; i++) { const v = x[src + i]; if (v !== 0) { nzI[n] = i * sc; nzV[n++] = v; } }
          if (n === 0) continue;
          mv.run(nzI, nzV, n, t, 0);
          for (let ky = 0; ky < 4; ky++) {
            const oy = 2 * iy - 1 + ky;
            if (oy < 0 || oy >= H2) continue;
            for (let kx = 0; kx < 4; kx++) {
              const ox = 2 * ix - 1 + kx;
              if (ox < 0 || ox >= W2) continue;
              const dst = (oy * W2 + ox) * CO, tk = (ky * 4 + kx) * CO;
              for (let o = 0; o < CO; o++) y[dst + o] += t[tk + o];
            }
          }
        }
      });
      cur = y; shape = [H2, W2, CO];
    } else if (t === "crop") {
      if (shape.length !== 3 || shape[0] < L.size) throw new Error(`crop to ${L.size} from [${shape}]`);
      const [, w, c] = shape, S = L.size, x = cur, y = new Float32Array(S * S * c);
      ops.push(() => { for (let r = 0; r < S; r++) y.set(x.subarray(r * w * c, (r * w + S) * c), r * S * c); });
      cur = y; shape = [S, S, c];
    } else {
      throw new Error(`layer type "${t}" is not supported in the browser`);
    }
  }
  const S = spec.image_size, C = spec.channels;
  if (shape.length !== 3 || shape[0] !== S || shape[1] !== S || shape[2] !== C)
    throw new Error(`decoder output [${shape}] is not [${S}, ${S}, ${C}]`);
  if (C !== 1 && C !== 3) throw new Error(`${C} channels: only 1 or 3 can be shown`);
  const out = cur;
  return {
    D, K, S, C,
    // z: numbers (length D), label: int or null -> Float32Array HWC pixels in 0..1 (reused)
    decode(z, label) {
      for (let i = 0; i < D; i++) input[i] = z[i];
      for (let k = 0; k < K; k++) input[D + k] = k === label ? 1 : 0;
      for (let j = 0; j < ops.length; j++) ops[j]();
      return out;
    },
  };
}

function getNet(spec) {
  let net = NETS.get(spec.id);
  if (!net) { net = compileSpec(spec); if (spec.id) NETS.set(spec.id, net); }
  return net;
}

function missingFeature() {
  if (typeof Float32Array !== "function") return "Float32Array";
  if (typeof atob !== "function") return "atob";
  if (typeof requestAnimationFrame !== "function") return "requestAnimationFrame";
  const c = document.createElement("canvas");
  if (!c.getContext || !c.getContext("2d")) return "Canvas 2D";
  return null;
}

// ---------------------------------------------------------------------------------------
// The encoder. Input: pixels in torch's layout (CHW, flat, values 0..1); the activations stay
// CHW throughout, so "flatten" is free and matches torch's nn.Flatten. conv2d is kernel 4,
// stride 2, padding 1 (what vae.models.Encoder uses), computed directly; the 2-D conv encoder
// (32 and 64 channels at 28x28) is about 1.7 M multiply-adds.
export function compileEncoder(spec) {
  if (!spec || spec.version !== 1 || spec.kind !== "encoder") throw new Error("not a version 1 encoder spec");
  const C = spec.channels, S = spec.image_size, D = spec.latent_dim, K = spec.conditional ? spec.num_classes : 0;
  const input = new Float32Array(C * S * S);
  let cur = input, shape = [C, S, S];
  const ops = [];
  let label = null;
  for (const L of spec.layers) {
    const t = L.type;
    if (t === "conv2d") {
      if (L.k !== 4 || L.stride !== 2 || L.pad !== 1) throw new Error("conv2d other than k=4 s=2 p=1");
      if (shape.length !== 3 || shape[0] !== L.in) throw new Error(`conv2d expects ${L.in} channels, gets [${shape}]`);
      const [CI, h, w] = shape, CO = L.out, H2 = Math.floor((h + 2 - 4) / 2) + 1, W2 = Math.floor((w + 2 - 4) / 2) + 1;
      const Wt = f32(L.weight, CO * CI * 16, "conv2d weight"), B = f32(L.bias, CO, "conv2d bias");
      const x = cur, y = new Float32Array(CO * H2 * W2);
      ops.push(() => {
        for (let o = 0; o < CO; o++) for (let oy = 0; oy < H2; oy++) for (let ox = 0; ox < W2; ox++) {
          let acc = B[o];
          for (let i = 0; i < CI; i++) {
            const wb = (o * CI + i) * 16, xb = i * h * w;
            for (let ky = 0; ky < 4; ky++) {
              const iy = 2 * oy - 1 + ky;
              if (iy < 0 || iy >= h) continue;
              for (let kx = 0; kx < 4; kx++) {
                const ix = 2 * ox - 1 + kx;
                if (ix < 0 || ix >= w) continue;
                acc += Wt[wb + ky * 4 + kx] * x[xb + iy * w + ix];
              }
            }
          }
          y[(o * H2 + oy) * W2 + ox] = acc;
        }
      });
      cur = y; shape = [CO, H2, W2];
    } else if (t === "flatten") {
      shape = [shape.reduce((a, b) => a * b, 1)];
    } else if (t === "concat_label") {
      const n = shape[0], x = cur, y = new Float32Array(n + K);
      ops.push(() => { y.set(x.subarray(0, n)); for (let k = 0; k < K; k++) y[n + k] = k === label ? 1 : 0; });
      cur = y; shape = [n + K];
    } else if (t === "linear") {
      if (shape.length !== 1 || shape[0] !== L.in) throw new Error(`linear expects ${L.in} inputs, gets [${shape}]`);
      cur = linearOp(L, cur, ops); shape = [L.out];
    } else if (t in ACTS) {
      const f = ACTS[t](L), x = cur, n = cur.length;
      ops.push(() => f(x, n));
    } else {
      throw new Error(`encoder layer type "${t}" is not supported in the browser`);
    }
  }
  if (shape.length !== 1 || shape[0] !== 2 * D) throw new Error(`encoder output [${shape}] is not [${2 * D}]`);
  const out = cur, mu = new Float64Array(D), logvar = new Float64Array(D);
  return {
    C, S, D, K,
    // pixels: CHW numbers in 0..1 (length C*S*S), lab: int or null -> {mu, logvar} (reused arrays)
    encode(pixels, lab) {
      for (let i = 0; i < input.length; i++) input[i] = pixels[i];
      label = lab ?? null;
      for (let j = 0; j < ops.length; j++) ops[j]();
      for (let i = 0; i < D; i++) { mu[i] = out[i]; logvar[i] = out[D + i]; }
      return { mu, logvar };
    },
  };
}
