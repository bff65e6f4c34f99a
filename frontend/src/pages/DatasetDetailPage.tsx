// One dataset: its files with shape, spacing, orientation and dtype; click a file to view it.
// A labelled dataset also lists its (image, label) pairs with the classes and voxels per class,
// and a pair opens as the image with its label drawn over it.
import { useState } from "react";
import { ApiError } from "../api/client";
import { api } from "../api/endpoints";
import type { FileOut, LabelledPairOut } from "../api/schema.gen";
import { AuthImage } from "../components/AuthMedia";
import { LabelledPairs } from "../components/LabelledPairs";
import { ErrorBox, Info } from "../components/Notice";
import { StatusBadge } from "../components/StatusBadge";
import { LazyViewer } from "../components/LazyViewer";
import { LabelOverlay2D } from "../components/LabelOverlay2D";
import type { LabelOverlay, VolumeSource } from "../components/VolumeViewer";
import { formatBytes, formatShape, formatSpacing } from "../lib/format";
import { useLoad } from "../lib/hooks";
import { Link, navigate } from "../lib/router";

const IMAGE_EXT = /\.(png|jpe?g)$/i;
const VOLUME_EXT = /\.(nii|nii\.gz|npy)$/i;

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

function volumeOf(f: FileOut): VolumeSource {
  return { url: f.url, name: baseName(f.path), title: f.path };
}

type Selection = { file: FileOut; pair?: undefined } | { pair: LabelledPairOut; file?: undefined };

export function DatasetDetailPage({ id }: { id: number }) {
  const ds = useLoad(() => api.dataset(id), [id]);
  const [selected, setSelected] = useState<Selection | null>(null);
  const [error, setError] = useState<unknown>(null);
  const d = ds.data;
  const files = d?.files ?? [];
  const labelled = d?.labelled_data ?? null;

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

  const removeFile = async (f: FileOut) => {
    if (!d) return;
    setError(null);
    try {
      await api.deleteDatasetFile(d.id, f.id);
      if (selected?.file?.id === f.id) setSelected(null);
      await ds.reload();
    } catch (e) {
      setError(e);
    }
  };

  const file = selected?.file ?? selected?.pair?.image ?? null;
  const pair = selected?.pair ?? null;
  const volume: VolumeSource | null = file && VOLUME_EXT.test(file.path) ? volumeOf(file) : null;
  const overlay: LabelOverlay | null =
    pair && volume && labelled ? { ...volumeOf(pair.label), classes: Object.keys(pair.voxels_per_class).map(Number) } : null;

  if (ds.error instanceof ApiError && ds.error.status === 404)
    return (
      <div className="page">
        <h1>Dataset {id}</h1>
        <Info>
          There is no dataset {id}: it was deleted, or never existed. <Link to="/datasets">See all datasets</Link>.
        </Info>
      </div>
    );

  const viewer =
    pair && file && IMAGE_EXT.test(file.path) ? (
      <LabelOverlay2D image={file} label={pair.label} classes={Object.keys(pair.voxels_per_class).map(Number)} />
    ) : file && IMAGE_EXT.test(file.path) ? (
      <figure className="image-preview">
        <AuthImage src={file.url} alt={file.path} />
        <figcaption>{file.path}</figcaption>
      </figure>
    ) : file && !volume ? (
      <Info>No in-browser preview for {file.path}.</Info>
    ) : (
      <LazyViewer source={volume} overlay={overlay} />
    );

  return (
    <div className="page">
      <header className="page-head">
        <h1>{d ? d.name : "Dataset"}</h1>
        {d && <StatusBadge status={d.status} />}
        {d?.labelled && <span className="badge">labelled</span>}
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
      <div className="dataset-layout">
        <div className="dataset-tables">
          {labelled && <LabelledPairs data={labelled} selected={pair} onView={(p) => setSelected({ pair: p })} />}
          <section className="card scroll">
            <table className="table" aria-label="Files">
              <thead>
                <tr>
                  <th>File</th>
                  <th>Shape</th>
                  <th>Spacing</th>
                  <th title="axis codes from the NIfTI affine">Orientation</th>
                  <th>dtype</th>
                  <th>Size</th>
                  {d?.status === "uploading" && <th aria-label="Actions" />}
                </tr>
              </thead>
              <tbody>
                {files.map((f) => (
                  <tr key={f.id} className={selected?.file?.id === f.id ? "selected" : ""}>
                    <td className="path">
                      <button type="button" className="linklike" aria-label={`View ${f.path}`} onClick={() => setSelected({ file: f })}>
                        {f.path}
                      </button>
                    </td>
                    <td className="nowrap">{formatShape(f.shape)}</td>
                    <td className="nowrap">{formatSpacing(f.spacing)}</td>
                    <td>{f.orientation ?? "—"}</td>
                    <td>{f.dtype ?? "—"}</td>
                    <td className="nowrap">{formatBytes(f.size_bytes)}</td>
                    {d?.status === "uploading" && (
                      <td className="actions">
                        <button type="button" className="small" aria-label={`Remove ${f.path}`} onClick={() => void removeFile(f)}>
                          Remove
                        </button>
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        </div>
        <section className="card">{viewer}</section>
      </div>
    </div>
  );
}
