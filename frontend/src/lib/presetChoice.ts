// Which served preset fits a dataset: its config's is_3d must match the dataset's kind, and of
// those the one in the same place of its list as the preset chosen before (a 3D "tiny" becomes
// the 2D "tiny" when a 2D dataset is picked), so no preset name is spelled here.
import type { Preset } from "../api/schema.gen";

function is3d(p: Preset): boolean | null {
  const v = (p.config as { is_3d?: unknown }).is_3d;
  return typeof v === "boolean" ? v : null;
}

/** The preset to show for a dataset of kind `want3d` (null: no dataset yet, any preset). */
export function matchingPreset(presets: Preset[], current: Preset | null, want3d: boolean | null): Preset | null {
  if (presets.length === 0) return null;
  const fits = (p: Preset) => want3d === null || is3d(p) === want3d;
  if (current && fits(current)) return current;
  const candidates = presets.filter(fits);
  if (candidates.length === 0) return current ?? presets[0];
  if (!current) return candidates[0];
  const siblings = presets.filter((p) => is3d(p) === is3d(current));
  const place = siblings.findIndex((p) => p.name === current.name);
  return candidates[Math.min(Math.max(place, 0), candidates.length - 1)];
}
