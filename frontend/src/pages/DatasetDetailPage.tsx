// One dataset: its files with shape, spacing and dtype; click a file to view it.
import { useState } from "react";
import { ApiError } from "../api/client";
import { api } from "../api/endpoints";
import type { FileOut } from "../api/schema.gen";
import { AuthImage } from "../components/AuthMedia";
import { ErrorBox, Info } from "../components/Notice";
import { StatusBadge } from "../components/StatusBadge";
import { LazyViewer } from "../components/LazyViewer";
import type { VolumeSource } from "../components/VolumeViewer";
import { formatBytes, formatShape, formatSpacing } from "../lib/format";
import { useLoad } from "../lib/hooks";
import { Link, navigate } from "../lib/router";

const IMAGE_EXT = /\.(png|jpe?g)$/i;
const VOLUME_EXT = /\.(nii|nii\.gz|npy)$/i;

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

export function DatasetDetailPage({ id }: { id: number }) {
  const ds = useLoad(() => api.dataset(id), [id]);
  const [selected, setSelected] = useState<FileOut | null>(null);
  const [error, setError] = useState<unknown>(null);
  const d = ds.data;
  const files = d?.files ?? [];

  const commit = async () => {
    if (!d) return;
    setError(null);
    try {
      await api.commitDataset(d.id);
      await ds.reload();
    } catch (e) {
      setError(e);
    }
  };

  const remove = async () => {
    if (!d || !confirm(`Delete dataset "${d.name}" and its files?`)) return;
    try {
      await api.deleteDataset(d.id);
      navigate("/datasets");
    } catch (e) {
      setError(e);
    }
  };

  const url = selected ? selected.url : null;
  const volume: VolumeSource | null =
    selected && url && VOLUME_EXT.test(selected.path) ? { url, name: baseName(selected.path), title: selected.path } : null;

  if (ds.error instanceof ApiError && ds.error.status === 404)
    return (
      <div className="page">
        <h1>Dataset {id}</h1>
        <Info>
          There is no dataset {id}: it was deleted, or never existed. <Link to="/datasets">See all datasets</Link>.
        </Info>
      </div>
    );

  return (
    <div className="page">
      <header className="page-head">
        <h1>{d ? d.name : "Dataset"}</h1>
        {d && <StatusBadge status={d.status} />}
        <div className="spacer" />
        {d?.status === "ready" && (
          <Link className="button primary" to={`/jobs/new?dataset=${d.id}`}>
            New training job
          </Link>
        )}
        {d?.status === "uploading" && (
          <button type="button" className="primary" onClick={commit}>
            Commit dataset
          </button>
        )}
        {d && (
          <button type="button" className="danger" onClick={remove}>
            Delete dataset
          </button>
        )}
      </header>
      <ErrorBox error={ds.error ?? error} />
      {d && (
        <div className="muted">
          {d.kind ? `${d.kind.toUpperCase()} · ` : ""}
          {files.length} files · {formatBytes(files.reduce((a, f) => a + (f.size_bytes ?? 0), 0))}
        </div>
      )}
      <div className="split">
        <section className="card scroll">
          <table className="table" aria-label="Files">
            <thead>
              <tr>
                <th>File</th>
                <th>Shape</th>
                <th>Spacing</th>
                <th>dtype</th>
                <th>Size</th>
              </tr>
            </thead>
            <tbody>
              {files.map((f) => (
                <tr key={f.id} className={selected?.id === f.id ? "selected" : ""}>
                  <td className="path">
                    <button type="button" className="linklike" aria-label={`View ${f.path}`} onClick={() => setSelected(f)}>
                      {f.path}
                    </button>
                  </td>
                  <td className="nowrap">{formatShape(f.shape)}</td>
                  <td>{formatSpacing(f.spacing)}</td>
                  <td>{f.dtype ?? "—"}</td>
                  <td className="nowrap">{formatBytes(f.size_bytes)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
        <section className="card">
          {selected && url && IMAGE_EXT.test(selected.path) ? (
            <figure className="image-preview">
              <AuthImage src={url} alt={selected.path} />
              <figcaption>{selected.path}</figcaption>
            </figure>
          ) : selected && !volume ? (
            <Info>No in-browser preview for {selected.path}.</Info>
          ) : (
            <LazyViewer source={volume} />
          )}
        </section>
      </div>
    </div>
  );
}
