import { api } from "../api/endpoints";
import { ErrorBox } from "../components/Notice";
import { StatusBadge } from "../components/StatusBadge";
import { UploadPanel } from "../components/UploadPanel";
import { formatBytes, formatTime } from "../lib/format";
import { useLoad } from "../lib/hooks";
import { Link } from "../lib/router";

export function DatasetsPage() {
  const list = useLoad(() => api.datasets(), [], 5000);
  const rows = list.data ?? [];
  return (
    <div className="page">
      <header className="page-head">
        <h1>Datasets</h1>
      </header>
      <UploadPanel onChanged={() => void list.reload()} />
      <section className="card">
        <h2>All datasets</h2>
        <ErrorBox error={list.error} />
        {rows.length === 0 && !list.loading ? (
          <p className="muted">No datasets yet. Upload a folder above.</p>
        ) : (
          <table className="table" aria-label="Datasets">
            <thead>
              <tr>
                <th>Name</th>
                <th>Kind</th>
                <th>State</th>
                <th>Files</th>
                <th>Size</th>
                <th>Created</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {rows.map((d) => (
                <tr key={String(d.id)}>
                  <td>
                    <Link to={`/datasets/${d.id}`}>{d.name}</Link>
                  </td>
                  <td>
                    {d.kind ?? "—"}
                    {d.labelled && <> <span className="badge">labelled</span></>}
                  </td>
                  <td>
                    <StatusBadge status={d.status} />
                  </td>
                  <td>{d.file_count}</td>
                  <td>{formatBytes(d.total_bytes)}</td>
                  <td>{formatTime(d.created_at)}</td>
                  <td className="actions">
                    {d.status === "ready" && (
                      <Link className="button small" to={`/jobs/new?dataset=${d.id}`}>
                        Train on {d.name}
                      </Link>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}
