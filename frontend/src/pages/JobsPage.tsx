import { api } from "../api/endpoints";
import { ErrorBox } from "../components/Notice";
import { ProgressBar } from "../components/ProgressBar";
import { StatusBadge } from "../components/StatusBadge";
import { formatDuration, formatNumber, formatTime } from "../lib/format";
import { useLoad } from "../lib/hooks";
import { Link } from "../lib/router";

export function JobsPage() {
  const jobs = useLoad(() => api.jobs(), [], 3000);
  const rows = [...(jobs.data ?? [])].sort((a, b) => Number(b.id) - Number(a.id) || String(b.created_at).localeCompare(String(a.created_at)));
  return (
    <div className="page">
      <header className="page-head">
        <h1>Jobs</h1>
        <div className="spacer" />
        <Link className="button" to="/jobs/finetune">
          Fine-tune from scratch
        </Link>
        <Link className="button primary" to="/jobs/new">
          New training job
        </Link>
      </header>
      <ErrorBox error={jobs.error} />
      <section className="card">
        {rows.length === 0 && !jobs.loading ? (
          <p className="muted">No jobs yet.</p>
        ) : (
          <table className="table" aria-label="Jobs">
            <thead>
              <tr>
                <th>Job</th>
                <th>Kind</th>
                <th>Status</th>
                <th>Progress</th>
                <th>Loss</th>
                <th>ETA</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((j) => (
                <tr key={j.id}>
                  <td>
                    <Link to={j.kind === "sample" ? `/samples/${j.id}` : `/jobs/${j.id}`}>
                      {`${j.kind} #${j.id}`}
                    </Link>
                  </td>
                  <td>{j.kind}</td>
                  <td>
                    <StatusBadge status={j.status} />
                  </td>
                  <td className="cell-progress">
                    <ProgressBar label={`Progress of job ${j.id}`} fraction={j.progress.fraction} />
                  </td>
                  <td>{formatNumber(j.last_metrics?.train_loss as number | undefined)}</td>
                  <td>{j.status === "running" ? formatDuration(j.progress.eta_s) : "—"}</td>
                  <td>{formatTime(j.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}
