// What a running job is doing now (its phase) and how it runs (device, precision and why), from
// the job's live state (useJobLive): shown on every training-loop job page.
import { phaseText } from "../lib/jobEvents";
import type { useJobLive } from "../lib/useJobLive";

export function RunFacts({ live }: { live: ReturnType<typeof useJobLive> }) {
  return (
    <>
      {live.job?.status === "running" && live.phase && (
        <p className="muted" data-testid="job-phase">
          {phaseText(live.phase)}…
        </p>
      )}
      {live.runInfo?.precision && (
        <p className="muted" data-testid="job-precision">
          precision: {live.runInfo.precision}
          {live.runInfo.precision_reason ? ` — ${live.runInfo.precision_reason}` : ""} (on {live.runInfo.device ?? "?"})
        </p>
      )}
    </>
  );
}
