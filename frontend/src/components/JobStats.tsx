// The live stats card of a training-loop job (train, fine-tune, study): progress, what it is doing
// and how it runs (RunFacts), step / total, speed, ETA, the kind's own figures, how many processes
// it runs as, on which worker and since when, then its actions.
import type { ReactNode } from "react";
import { formatDuration, formatRate, formatTime } from "../lib/format";
import { isTerminal, type Job } from "../lib/job";
import type { useJobLive } from "../lib/useJobLive";
import { JobActions } from "./JobActions";
import { ProgressBar } from "./ProgressBar";
import { RunFacts } from "./RunFacts";

type Live = ReturnType<typeof useJobLive>;

/** One figure of the card; `testId` names it for the browser tests. */
export interface Stat {
  label: string;
  value: ReactNode;
  title?: string;
  testId?: string;
}

export function StatList({ stats }: { stats: Stat[] }) {
  return (
    <dl className="stats">
      {stats.map((s) => (
        <div key={s.label}>
          <dt title={s.title}>{s.label}</dt>
          <dd data-testid={s.testId}>{s.value}</dd>
        </div>
      ))}
    </dl>
  );
}

/** `kindStats` stand between the ETA and the run's facts (world size, worker, start). */
export function JobStats({ job, live, progressLabel, kindStats }: { job: Job; live: Live; progressLabel: string; kindStats: Stat[] }) {
  const p = job.progress;
  const step = `${p.step} / ${p.total}`;
  const stats: Stat[] = [
    { label: "Step", value: step, testId: "job-step" },
    { label: "Speed", value: formatRate(live.itPerS) },
    { label: "ETA", value: isTerminal(job.status) ? "—" : formatDuration(live.eta) },
    ...kindStats,
    { label: "World size", value: live.runInfo?.world_size ?? job.gpus, testId: "job-world-size", title: "processes the job runs as: one per GPU, or CPU processes on a CPU worker" },
    { label: "Worker", value: job.worker ?? "—" },
    { label: "Started", value: formatTime(job.started_at) },
  ];
  return (
    <section className="card">
      <ProgressBar label={progressLabel} fraction={p.fraction} text={`step ${step}`} />
      <RunFacts live={live} />
      <StatList stats={stats} />
      <JobActions job={job} onChange={() => void live.refresh()} />
    </section>
  );
}

/** The job's failure, at the top of its page. */
export function JobFailure({ error }: { error: string | null | undefined }) {
  if (!error) return null;
  return (
    <div className="notice notice-error" role="alert">
      <strong>Failed:</strong> {error}
    </div>
  );
}
