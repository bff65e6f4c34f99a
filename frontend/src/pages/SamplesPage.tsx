// Launch a sample job from a trained model, and list the sample jobs.
import { useEffect, useState, type FormEvent } from "react";
import { api, type SampleJobRequest } from "../api/endpoints";
import { ErrorBox } from "../components/Notice";
import { StatusBadge } from "../components/StatusBadge";
import { formatTime } from "../lib/format";
import { useLoad } from "../lib/hooks";
import { requestDefaults, servedOpenApi } from "../lib/requestDefaults";
import { Link, navigate, useLocation } from "../lib/router";

export function SamplesPage() {
  const { query } = useLocation();
  const jobs = useLoad(() => api.jobs(), [], 4000);
  const all = jobs.data ?? [];
  // weights exist once a train job succeeded, or was stopped after a checkpoint
  const models = all.filter((j) => j.kind === "train" && (j.status === "succeeded" || (j.status !== "running" && j.status !== "queued" && j.checkpoint_step != null)));
  const sampleJobs = all.filter((j) => j.kind === "sample").sort((a, b) => Number(b.id) - Number(a.id));
  const [source, setSource] = useState(query.get("source") ?? "");
  // the form starts from the defaults and sampler names the API serves (SampleJobCreate)
  const served = useLoad(() => servedOpenApi().then((doc) => requestDefaults(doc, "SampleJobCreate")), []);
  const samplers = served.data?.sampler?.options ?? [];
  const [count, setCount] = useState("");
  const [sampler, setSampler] = useState("");
  const [steps, setSteps] = useState("");
  const [seed, setSeed] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!source && models.length) setSource(String(models[0].id));
  }, [models.length, source]);
  useEffect(() => {
    const d = served.data;
    if (!d) return;
    const text = (v: unknown) => (v === undefined || v === null ? "" : String(v));
    setCount((c) => c || text(d.num_samples?.default));
    setSampler((s) => s || text(d.sampler?.default));
    setSteps((s) => s || text(d.steps?.default));
    setSeed((s) => s || text(d.seed?.default));
  }, [served.data]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const n = Number(count), st = Number(steps), sd = Number(seed);
    if (!source) return setError(new Error("Choose a trained model (a succeeded training job)."));
    if (!Number.isInteger(n) || n < 1) return setError(new Error("Number of samples must be a whole number ≥ 1."));
    if (!Number.isInteger(st) || st < 1) return setError(new Error("Steps must be a whole number ≥ 1."));
    if (!Number.isInteger(sd) || sd < 0) return setError(new Error("Seed must be a whole number ≥ 0."));
    setBusy(true);
    try {
      const job = await api.createSampleJob({ source_job_id: Number(source), num_samples: n, sampler: sampler as SampleJobRequest["sampler"], steps: st, seed: sd, device: "auto" });
      navigate(`/samples/${job.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="page">
      <header className="page-head">
        <h1>Samples</h1>
      </header>
      <form className="card" onSubmit={submit} aria-label="Generate samples">
        <h2>Generate samples</h2>
        <div className="row wrap">
          <label className="inline">
            Model
            <select aria-label="Model" value={source} onChange={(e) => setSource(e.target.value)}>
              {models.length === 0 && <option value="">no finished training job</option>}
              {models.map((m) => (
                <option key={m.id} value={String(m.id)}>
                  {`train #${m.id}`}
                  {m.status !== "succeeded" ? ` (${m.status}, step ${m.checkpoint_step})` : ""}
                </option>
              ))}
            </select>
          </label>
          <label className="inline">
            Number of samples
            <input aria-label="Number of samples" inputMode="numeric" size={4} value={count} onChange={(e) => setCount(e.target.value)} />
          </label>
          <label className="inline">
            Sampler
            <select aria-label="Sampler" value={sampler} onChange={(e) => setSampler(e.target.value)}>
              {samplers.map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </label>
          <label className="inline">
            Steps
            <input aria-label="Steps" inputMode="numeric" size={5} value={steps} onChange={(e) => setSteps(e.target.value)} />
          </label>
          <label className="inline">
            Seed
            <input aria-label="Seed" inputMode="numeric" size={6} value={seed} onChange={(e) => setSeed(e.target.value)} />
          </label>
          <button type="submit" className="primary" disabled={busy || !served.data}>
            Generate samples
          </button>
        </div>
        <ErrorBox error={error} />
        <ErrorBox error={served.error} title="API description" />
      </form>
      <section className="card">
        <h2>Sample jobs</h2>
        <ErrorBox error={jobs.error} />
        {sampleJobs.length === 0 ? (
          <p className="muted">No sample jobs yet.</p>
        ) : (
          <table className="table" aria-label="Sample jobs">
            <thead>
              <tr>
                <th>Job</th>
                <th>Model</th>
                <th>Status</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {sampleJobs.map((j) => (
                <tr key={j.id}>
                  <td>
                    <Link to={`/samples/${j.id}`}>sample #{j.id}</Link>
                  </td>
                  <td>{j.source_job_id != null ? <Link to={`/jobs/${j.source_job_id}`}>train #{String(j.source_job_id)}</Link> : "—"}</td>
                  <td>
                    <StatusBadge status={j.status} />
                  </td>
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
