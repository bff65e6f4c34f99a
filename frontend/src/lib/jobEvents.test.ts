import { describe, expect, it } from "vitest";
import type { Job } from "../lib/job";
import { lossRows } from "./chartData";
import { applyEvent, applyLive, initialLive, mergeMetrics, phaseText, type LiveState } from "./jobEvents";

const job: Job = {
  id: 5, kind: "train", status: "queued", device: "auto", queue: "cpu", gpus: 1, dataset_id: 1, source_job_id: null, config: {},
  progress: { step: 0, total: 40, fraction: 0, eta_s: null, it_s: null }, last_metrics: null, checkpoint_step: null, error: null,
  cancel_requested: false, worker: null, attempts: 0, created_at: "2026-01-01T00:00:00Z", started_at: null, finished_at: null,
};
const start: LiveState = { ...initialLive, job };
const ev = (event: string, data: unknown) => ({ event, data: typeof data === "string" ? data : JSON.stringify(data), id: null });

describe("applyEvent", () => {
  it("progress moves the bar and marks a queued job running", () => {
    const s = applyEvent(start, ev("progress", { step: 10, total: 40, eta_s: 30, it_per_s: 2.5 }), 1000);
    expect(s.job?.status).toBe("running");
    expect(s.job?.progress).toMatchObject({ step: 10, total: 40, fraction: 0.25, eta_s: 30 });
    expect(s.lastEventAt).toBe(1000);
    const nested = applyEvent(start, ev("progress", { progress: { step: 20, total: 40, fraction: 0.5, eta_s: null } }));
    expect(nested.job?.progress?.fraction).toBe(0.5);
  });

  it("metrics append to the chart series in step order without duplicates", () => {
    let s = applyEvent(start, ev("metrics", { step: 20, train_loss: 0.5, lr: 1e-3 }));
    s = applyEvent(s, ev("metrics", [{ step: 10, train_loss: 0.9 }, { step: 20, train_loss: 0.45 }]));
    expect(s.metrics).toEqual([
      { step: 10, train_loss: 0.9 },
      { step: 20, train_loss: 0.45, lr: 1e-3 },
    ]);
    expect(s.job?.last_metrics).toMatchObject({ step: 20, train_loss: 0.45 });
  });

  it("status ends the job, keeps its error and fills the bar on success", () => {
    const failed = applyEvent(start, ev("status", { status: "failed", error: "CUDA out of memory: lower dataset.batch_size" }));
    expect(failed.job?.status).toBe("failed");
    expect(failed.job?.error).toMatch(/batch_size/);
    const ok = applyEvent(start, ev("status", { status: "succeeded" }));
    expect(ok.job?.progress).toMatchObject({ fraction: 1, step: 40 });
    expect(applyEvent(start, ev("status", '"cancelled"')).job?.status).toBe("cancelled");
    const stopped = applyEvent(start, ev("status", { status: "cancelled", step: 12, total: 40 }));
    expect(stopped.job?.progress).toMatchObject({ step: 12, total: 40, fraction: 0.3 });
    expect(stopped.job).not.toHaveProperty("step");
    const snap = applyEvent(start, ev("status", { status: "running", snapshot: true, progress: { step: 8, total: 40, fraction: 0.2, eta_s: 3, it_s: 4 } }));
    expect(snap.job?.progress).toMatchObject({ step: 8, fraction: 0.2, it_s: 4 });
  });

  it("sample events bump the sample version; junk is ignored", () => {
    const s = applyEvent(start, ev("sample", { id: 3 }));
    expect(s.samplesVersion).toBe(1);
    const junk = applyEvent(start, ev("progress", "not json"));
    expect(junk.job).toEqual(job);
    expect(applyEvent(start, ev("unknown", {})).job).toEqual(job);
  });

  it("mergeMetrics keeps old rows when given none", () => {
    const rows = [{ step: 1, train_loss: 1 }];
    expect(mergeMetrics(rows, [])).toBe(rows);
  });

  it("progress events build the live loss curve; a resume rewinds it; a reload merges the stored curve", () => {
    let s = start;
    for (const [step, loss] of [[2, 1.5], [4, 1.2], [6, 0.9]]) s = applyEvent(s, ev("progress", { step, total: 40, loss }));
    expect(s.loss).toEqual([[2, 1.5], [4, 1.2], [6, 0.9]]);
    s = applyEvent(s, ev("progress", { step: 4, total: 40, loss: 1.1 })); // resumed from the checkpoint at 4
    expect(s.loss).toEqual([[2, 1.5], [4, 1.1]]);
    s = applyEvent(s, ev("progress", { step: 5, total: 40, loss: null }));
    expect(s.loss).toEqual([[2, 1.5], [4, 1.1]]);
    const reloaded = applyLive({ ...start, loss: [[8, 0.7]] }, { loss: [[2, 1.5], [4, 1.1]], phase: { phase: "training" }, run_info: null });
    expect(reloaded.loss).toEqual([[2, 1.5], [4, 1.1], [8, 0.7]]);
    expect(reloaded.phase?.phase).toBe("training");
    // the chart: live points are the train loss, held-out loss stays from the metric rows
    const rows = lossRows([{ step: 4, train_loss: 9, val_loss: 1.3 }], reloaded.loss);
    expect(rows.filter((r) => r.train_loss === 9)).toEqual([]);
    expect(rows).toContainEqual({ step: 4, val_loss: 1.3 });
    expect(rows).toContainEqual({ step: 8, train_loss: 0.7 });
  });

  it("phase and run_info events are kept for the page", () => {
    let s = applyEvent(start, ev("phase", { phase: "preparing data", done: 3, total: 40 }));
    expect(phaseText(s.phase!)).toBe("preparing data 3/40");
    s = applyEvent(s, ev("run_info", { device: "cpu", precision: "bf16", precision_reason: "auto: native" }));
    expect(s.runInfo?.precision).toBe("bf16");
    expect(phaseText({ phase: "loading kernels" })).toBe("loading kernels");
  });
});
