// The job's log file (GET /api/jobs/{id}/log), refreshed while the job runs.
import { useEffect, useState } from "react";
import { apiFetch } from "../api/client";
import { api } from "../api/endpoints";

const TAIL_BYTES = 200_000;

export function JobLog({ jobId, live, version }: { jobId: number; live: boolean; version: string }) {
  const [text, setText] = useState<string>("");
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let alive = true;
    const load = () =>
      apiFetch(`${api.jobLogUrl(jobId)}?tail=${TAIL_BYTES}`) // a long run's log can be large
        .then((r) => r.text())
        .then((t) => alive && (setText(t), setError(null)))
        .catch((e: Error) => alive && setError(e.message));
    void load();
    const t = live ? setInterval(load, 4000) : null;
    return () => {
      alive = false;
      if (t) clearInterval(t);
    };
  }, [jobId, live, version]);
  return (
    <details className="card log" open={false}>
      <summary>Log</summary>
      {error ? <div className="muted">Log unavailable: {error}</div> : <pre aria-label="Job log">{text || "(empty)"}</pre>}
    </details>
  );
}
