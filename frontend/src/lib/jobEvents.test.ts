import { describe, expect, it } from "vitest";
import type { Job } from "../lib/job";
import { applyEvent, initialLive, mergeMetrics, type LiveState } from "./jobEvents";

const job: Job = {
  id: 5, kind: "train", status: "queued", device: "auto", queue: "cpu", dataset_id: 1, source_job_id: null, config: {},
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
});
