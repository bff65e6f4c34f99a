// Parameter count of the engine's UNet (ddpm/nn/unet.py) computed from a config, layer by
// layer, so the New-job form can show the model size before anything is launched.
import type { TrainConfig } from "./configTypes";

export function featureSides(imageSize: number, levels: number): number[] {
  return Array.from({ length: levels }, (_, i) => Math.floor(imageSize / 2 ** i));
}

export function countUNetParams(cfg: TrainConfig): number {
  const dims = cfg.is_3d ? 3 : 2;
  const u = cfg.model.unet;
  const inCh = cfg.dataset.image_channels;
  const k3 = 3 ** dims;
  const dim = u.dim;
  const mults = u.channel_mults;
  const levels = mults.length;
  const chans = mults.map((m) => dim * m);
  const emb = dim * 4;
  const sides = featureSides(cfg.dataset.image_size, levels);
  const fullAt = u.attn_res == null ? [sides[levels - 1]] : u.attn_res;

  const conv = (ci: number, co: number, k = k3) => k * ci * co + co;
  const linear = (a: number, b: number) => a * b + b;
  const res = (ci: number, co: number) =>
    2 * ci + conv(ci, co) + linear(emb, 2 * co) + conv(co, co) + (ci !== co ? conv(ci, co, 1) : 0);
  const attn = (c: number) => 2 * c + linear(c, 3 * c) + linear(c, c);
  const attnAt = (lv: number) => (fullAt.includes(sides[lv]) || u.linear_attn ? attn(chans[lv]) : 0);

  let n = linear(dim, emb) + linear(emb, emb);
  n += conv(inCh * (u.self_condition ? 2 : 1), dim);
  const skips: number[] = [];
  let ch = dim;
  for (let lv = 0; lv < levels; lv++) {
    for (let r = 0; r < u.res_blocks; r++) {
      n += res(ch, chans[lv]) + attnAt(lv);
      ch = chans[lv];
      skips.push(ch);
    }
    if (lv < levels - 1) n += conv(ch, ch, 2 ** dims);
  }
  n += res(ch, ch) + attnAt(levels - 1) + res(ch, ch);
  for (let lv = levels - 1; lv >= 0; lv--) {
    for (let r = 0; r < u.res_blocks; r++) {
      n += res(ch + (skips.pop() ?? 0), chans[lv]) + attnAt(lv);
      ch = chans[lv];
    }
    if (lv > 0) {
      n += conv(ch, chans[lv - 1]);
      ch = chans[lv - 1];
    }
  }
  n += 2 * ch + conv(ch, inCh);
  return n;
}

/** Count, or null when the config is not buildable (the form shows the reason elsewhere). */
export function estimateParams(cfg: TrainConfig): number | null {
  try {
    const u = cfg.model?.unet;
    if (!u || !Array.isArray(u.channel_mults) || u.channel_mults.length === 0) return null;
    const vals = [u.dim, u.res_blocks, cfg.dataset?.image_size, cfg.dataset?.image_channels, ...u.channel_mults];
    if (vals.some((v) => typeof v !== "number" || !Number.isFinite(v) || v < 1)) return null;
    return countUNetParams(cfg);
  } catch {
    return null;
  }
}
