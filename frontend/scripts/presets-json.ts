// Prints every New-job preset with the app's parameter estimate as JSON, so the Python tests
// can check them against the engine (ddpm.config accepts them; the UNet has that many weights).
// Run: npx vite-node scripts/presets-json.ts
import { PRESET_SIZES, presetConfig } from "../src/lib/presets";
import { estimateParams } from "../src/lib/paramEstimate";

const out: Array<{ name: string; config: unknown; params: number | null }> = [];
for (const dims of ["3d", "2d"] as const) {
  for (const size of PRESET_SIZES) {
    const config = presetConfig(dims, size);
    out.push({ name: `${dims} ${size}`, config, params: estimateParams(config) });
  }
}
console.log(JSON.stringify(out));
