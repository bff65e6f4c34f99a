// Device choices for the config's `gpu` key from what the live workers report.
import type { WorkerInfo } from "../api/types";

export interface DeviceOption {
  value: number; // -1 = CPU
  label: string;
}

export function deviceOptions(workers: WorkerInfo[]): DeviceOption[] {
  const gpus = new Set<number>();
  for (const w of workers) {
    const d = String(w.device ?? "").toLowerCase();
    const m = /^(?:cuda|gpu)(?::(\d+))?/.exec(d);
    if (m) gpus.add(m[1] ? Number(m[1]) : 0);
  }
  if (gpus.size === 0) gpus.add(0); // still offer GPU 0: a GPU worker may join later
  return [{ value: -1, label: "CPU" }, ...[...gpus].sort((a, b) => a - b).map((g) => ({ value: g, label: `GPU ${g}` }))];
}
