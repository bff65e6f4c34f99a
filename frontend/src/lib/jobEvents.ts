// Pure reducer from a job's Server-Sent Events to the job page's state, so the live view
// is testable without a browser. Unknown events and unparsable data are ignored.
import type { JobLive, MetricOut as MetricRow, PhaseOut, RunInfoOut } from "../api/schema.gen";
import type { Job } from "./job";
import type { SSEEvent } from "./sse";

export interface LiveState {
  job: Job | null;
  metrics: MetricRow[];
  samplesVersion: number; // bumps when a sample event arrives (the page refetches)
  lastEventAt: number | null;
  loss: Array<[number, number]>; // [step, training loss] of progress reports, by step
  phase: PhaseOut | null;
  runInfo: RunInfoOut | null;
}

export const initialLive: LiveState = { job: null, metrics: [], samplesVersion: 0, lastEventAt: null, loss: [], phase: null, runInfo: null };

/** "preparing data 3/40", "loading kernels". */
export function phaseText(p: PhaseOut): string {
  return p.total ? `${p.phase} ${p.done ?? 0}/${p.total}` : p.phase;
}

/** Add a [step, loss] point; a resumed run rewinds to its checkpoint, so a point replaces the
 * ones at and after its step (the server's GET /live curve follows the same rule). */
export function addLossPoint(points: Array<[number, number]>, step: number, loss: unknown): Array<[number, number]> {
  if (!Number.isFinite(step)) return points;
  let n = points.length;
  while (n > 0 && points[n - 1][0] >= step) n--;
  const kept = n === points.length ? points : points.slice(0, n);
  return typeof loss === "number" && Number.isFinite(loss) ? [...kept, [step, loss]] : kept;
}

/** The state a reload gets back from GET /api/jobs/{id}/live, merged with events already seen. */
export function applyLive(state: LiveState, live: Omit<JobLive, "loss"> & { loss: number[][] }): LiveState {
  let loss = live.loss.map((p) => [p[0], p[1]] as [number, number]);
  for (const p of state.loss) if (p[0] > (loss.length ? loss[loss.length - 1][0] : -1)) loss = [...loss, p];
  return { ...state, loss, phase: state.phase ?? live.phase ?? null, runInfo: state.runInfo ?? live.run_info ?? null };
}

function parse(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return null;
  }
}

function asObj(v: unknown): Record<string, unknown> | null {
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** Insert/replace rows by step, keeping the list sorted. */
export function mergeMetrics(old: MetricRow[], rows: MetricRow[]): MetricRow[] {
  if (rows.length === 0) return old;
  const byStep = new Map(old.map((r) => [r.step, r]));
  for (const r of rows) if (typeof r.step === "number") byStep.set(r.step, { ...byStep.get(r.step), ...r });
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

export function applyEvent(state: LiveState, ev: SSEEvent, now = Date.now()): LiveState {
  const data = parse(ev.data);
  const obj = asObj(data);
  const next: LiveState = { ...state, lastEventAt: now };
  switch (ev.event) {
    case "progress": {
      if (!obj || !state.job) return next;
      const p = asObj(obj.progress) ?? obj;
      const step = Number(p.step);
      const total = Number(p.total ?? state.job.progress?.total);
      const progress = {
        ...(state.job.progress ?? {}),
        ...p,
        step,
        total,
        fraction: typeof p.fraction === "number" ? p.fraction : total > 0 ? step / total : 0,
        eta_s: (p.eta_s as number | null | undefined) ?? null,
      };
      const job: Job = { ...state.job, progress };
      if (state.job.status === "queued") job.status = "running";
      const lm = asObj(obj.last_metrics) ?? asObj(obj.metrics);
      if (lm) job.last_metrics = { ...(state.job.last_metrics ?? {}), ...lm } as MetricRow;
      return { ...next, job, loss: addLossPoint(state.loss, step, p.loss) };
    }
    case "phase":
      return obj && typeof obj.phase === "string" ? { ...next, phase: obj as unknown as PhaseOut } : next;
    case "run_info":
      return obj ? { ...next, runInfo: obj as RunInfoOut } : next;
    case "metrics": {
      const rows = (Array.isArray(data) ? data : obj && Array.isArray(obj.metrics) ? obj.metrics : obj ? [obj] : []) as MetricRow[];
      const valid = rows.filter((r) => r && typeof r.step === "number");
      const job = state.job && valid.length ? { ...state.job, last_metrics: { ...(state.job.last_metrics ?? {}), ...valid[valid.length - 1] } } : state.job;
      return { ...next, job, metrics: mergeMetrics(state.metrics, valid) };
    }
    case "status": {
      if (!state.job) return next;
      const status = typeof data === "string" ? data : obj ? (obj.status as string) : null;
      if (!status) return next;
      const { step, total, progress: p, ...rest } = obj ?? {};
      const job: Job = { ...state.job, ...rest, status: status as Job["status"] };
      if (obj && "error" in obj) job.error = obj.error as string | null;
      // the status payload carries the step it stopped at (and the snapshot a full progress)
      const snap = asObj(p);
      if (snap) job.progress = { ...(state.job.progress ?? {}), ...snap } as Job["progress"];
      else if (typeof step === "number" && job.progress) {
        const t = typeof total === "number" ? total : job.progress.total;
        job.progress = { ...job.progress, step, total: t, fraction: t > 0 ? Math.min(1, step / t) : 0 };
      }
      if (status === "succeeded" && job.progress) job.progress = { ...job.progress, fraction: 1, step: job.progress.total, eta_s: 0 };
      return { ...next, job };
    }
    case "sample":
      return { ...next, samplesVersion: state.samplesVersion + 1 };
    default:
      return next;
  }
}
