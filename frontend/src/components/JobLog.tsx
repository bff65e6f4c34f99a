// The job's log file (GET /api/jobs/{id}/log), refreshed while the job runs.
import { apiFetch } from "../api/client";
import { api } from "../api/endpoints";
import { useLoad } from "../lib/hooks";

const TAIL_BYTES = 200_000;
const REFRESH_MS = 4000;

export function JobLog({ jobId, live, version }: { jobId: number; live: boolean; version: string }) {
  const log = useLoad(
    () => apiFetch(`${api.jobLogUrl(jobId)}?tail=${TAIL_BYTES}`).then((r) => r.text()), // a long run's log can be large
    [jobId, version],
    live ? REFRESH_MS : null,
  );
  return (
    <details className="card log" open={false}>
      <summary>Log</summary>
      {log.error ? <div className="muted">Log unavailable: {log.error.message}</div> : <pre aria-label="Job log">{log.data || "(empty)"}</pre>}
    </details>
  );
}
