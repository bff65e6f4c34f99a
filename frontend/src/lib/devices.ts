// The job's device choice (the API's "device": auto | cpu | gpu) and what the live workers offer.
import type { WorkerCapacity, WorkerOut } from "../api/schema.gen";
import type { Device } from "./job";

export const DEVICE_CHOICES: Array<{ value: Device; label: string }> = [
  { value: "auto", label: "Auto (GPU when a GPU worker is up)" },
  { value: "cpu", label: "CPU" },
  { value: "gpu", label: "GPU" },
];

/** The hardware the live workers have, as config fields' ``requires`` names it ("gpu"). */
export function liveHardware(workers: Pick<WorkerOut, "device">[]): Set<string> {
  return new Set(liveDevices(workers).some((d) => d !== "cpu") ? ["gpu"] : []);
}

/** Distinct devices of the live workers, GPUs first: ["cuda:0", "cpu"]. */
export function liveDevices(workers: Pick<WorkerOut, "device">[]): string[] {
  const set = new Set(workers.map((w) => String(w.device ?? "").toLowerCase()).filter(Boolean));
  return [...set].sort((a, b) => Number(a === "cpu") - Number(b === "cpu") || a.localeCompare(b));
}

/** A worker's capacity in words: "2 GPUs" on a GPU worker, "2 processes" on a CPU worker. */
export function capacityText(w: Pick<WorkerCapacity, "device" | "gpus">): string {
  const cpu = String(w.device ?? "").toLowerCase() === "cpu";
  const unit = cpu ? "process" : "GPU";
  return `${w.gpus} ${unit}${w.gpus === 1 ? "" : cpu ? "es" : "s"}`;
}

/** The most processes one job may ask for: the largest live worker (the API refuses more). */
export function largestWorker(workers: Pick<WorkerCapacity, "gpus">[]): number {
  return workers.reduce((m, w) => Math.max(m, w.gpus ?? 1), 0);
}
