import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import type { Job } from "../lib/job";
import type { useJobLive } from "../lib/useJobLive";
import { initialLive } from "../lib/jobEvents";
import { JobStats } from "./JobStats";

type Live = ReturnType<typeof useJobLive>;
const job: Job = {
  id: 5, kind: "finetune", status: "running", device: "auto", queue: "cpu", gpus: 1, dataset_id: 1, source_job_id: 2, eval_dataset_id: null, config: {},
  progress: { step: 10, total: 40, fraction: 0.25, eta_s: 30, it_s: 2 }, last_metrics: null, checkpoint_step: null, error: null,
  cancel_requested: false, worker: "w1", attempts: 0, created_at: "2026-01-01T00:00:00Z", started_at: null, finished_at: null,
} as Job;
const live = (j: Job, extra: Partial<Live> = {}): Live => ({ ...initialLive, job: j, connected: true, itPerS: 2, eta: 15, refresh: async () => undefined, ...extra }) as Live;
const terms = (html: string) => [...html.matchAll(/<dt[^>]*>([^<]*)<\/dt><dd[^>]*>([^<]*)<\/dd>/g)].map((m) => [m[1], m[2]]);

describe("JobStats", () => {
  it("shows step, speed and ETA, then the kind's figures, then how and where the job runs", () => {
    const html = renderToStaticMarkup(<JobStats job={job} live={live(job, { runInfo: { world_size: 2 } })} progressLabel="Fine-tune progress" kindStats={[{ label: "Held-out Dice", value: "0.8", testId: "latest-dice" }]} />);
    expect(terms(html)).toEqual([
      ["Step", "10 / 40"],
      ["Speed", "2.00 it/s"],
      ["ETA", "15 s"],
      ["Held-out Dice", "0.8"],
      ["World size", "2"], // what the run reported wins over the gpus asked for
      ["Worker", "w1"],
      ["Started", "—"],
    ]);
    expect(html).toContain('data-testid="job-step"');
    expect(html).toContain('data-testid="latest-dice"');
    expect(html).toMatch(/role="progressbar" aria-label="Fine-tune progress"[^>]*aria-valuenow="25"[^>]*aria-valuetext="step 10 \/ 40"/);
  });

  it("a finished job has no ETA, and its world size is the gpus it asked for until the run says", () => {
    const done = { ...job, status: "succeeded", progress: { ...job.progress, step: 40, fraction: 1 } } as Job;
    const rows = Object.fromEntries(terms(renderToStaticMarkup(<JobStats job={done} live={live(done)} progressLabel="Training progress" kindStats={[]} />)));
    expect(rows.ETA).toBe("—");
    expect(rows["World size"]).toBe("1");
  });
});
