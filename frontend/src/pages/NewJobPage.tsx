// New training job: dataset, preset, device, every config field (or raw JSON), the
// parameter estimate, and the server's validation messages next to the fields.
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { api } from "../api/endpoints";
import { ApiError } from "../api/client";
import type { Dataset, Device, WorkerInfo } from "../api/types";
import { ConfigForm } from "../components/ConfigForm";
import { ErrorBox } from "../components/Notice";
import { FIELD_PATHS } from "../lib/configFields";
import type { TrainConfig } from "../lib/configTypes";
import { mapErrorsToFields, parseDetail, type FieldError } from "../lib/errors";
import { formatCount } from "../lib/format";
import { useLoad } from "../lib/hooks";
import { estimateParams } from "../lib/paramEstimate";
import { PRESET_NOTES, PRESET_SIZES, normaliseConfig, presetConfig, setField, type Dims, type Size } from "../lib/presets";
import { navigate, useLocation } from "../lib/router";
import { DEVICE_CHOICES, gpuForDevice, liveDevices } from "../lib/devices";

export function NewJobPage() {
  const { query } = useLocation();
  const datasets = useLoad(() => api.datasets(), []);
  const workers = useLoad<WorkerInfo[]>(() => api.workers().catch(() => []), []);
  const ready = (datasets.data ?? []).filter((d) => d.status === "ready");
  const [datasetId, setDatasetId] = useState<string>(query.get("dataset") ?? "");
  const [preset, setPreset] = useState<{ dims: Dims; size: Size }>({ dims: "3d", size: "tiny" });
  const [config, setConfig] = useState<TrainConfig>(() => presetConfig("3d", "tiny"));
  const [device, setDevice] = useState<Device>("auto");
  const [mode, setMode] = useState<"form" | "json">("form");
  const [jsonText, setJsonText] = useState("");
  const [jsonError, setJsonError] = useState<string | null>(null);
  const [serverErrors, setServerErrors] = useState<FieldError[]>([]);
  const [submitError, setSubmitError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const dataset: Dataset | undefined = ready.find((d) => String(d.id) === datasetId);
  const devices = liveDevices(workers.data ?? []);

  // Pick the first ready dataset, and follow its kind with the preset's dimensionality.
  useEffect(() => {
    if (!datasetId && ready.length) setDatasetId(String(ready[0].id));
  }, [ready.length, datasetId]);
  useEffect(() => {
    if (dataset?.kind && (dataset.kind === "3d") !== config.is_3d) applyPreset(dataset.kind, preset.size);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [dataset?.id, dataset?.kind]);

  const applyPreset = (dims: Dims, size: Size) => {
    const cfg = presetConfig(dims, size);
    cfg.gpu = gpuForDevice(device, cfg.gpu);
    setPreset({ dims, size });
    setConfig(cfg);
    setServerErrors([]);
    if (mode === "json") setJsonText(JSON.stringify(cfg, null, 2));
  };

  const params = useMemo(() => estimateParams(config), [config]);
  const mapped = mapErrorsToFields(serverErrors, FIELD_PATHS);
  const byField = mapped.byField;
  // the JSON editor hides the fields, so there every error is listed at the top
  const global = mode === "json" ? serverErrors : mapped.global;

  const switchMode = (m: "form" | "json") => {
    if (m === mode) return;
    if (m === "json") setJsonText(JSON.stringify(config, null, 2));
    else if (!applyJson()) return;
    setMode(m);
  };

  const applyJson = (): TrainConfig | null => {
    try {
      const parsed = JSON.parse(jsonText);
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("the config must be a JSON object");
      setConfig(parsed as TrainConfig);
      setJsonError(null);
      return parsed as TrainConfig;
    } catch (e) {
      setJsonError(e instanceof Error ? e.message : String(e));
      return null;
    }
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const cfg = mode === "json" ? applyJson() : config;
    if (!cfg) return;
    if (!datasetId) {
      setSubmitError(new Error("Choose a dataset first (upload one on the Datasets page)."));
      return;
    }
    setBusy(true);
    setSubmitError(null);
    setServerErrors([]);
    try {
      const job = await api.createTrainJob(isNaN(Number(datasetId)) ? datasetId : Number(datasetId), normaliseConfig(cfg), device);
      navigate(`/jobs/${job.id}`);
    } catch (err) {
      if (err instanceof ApiError && (err.status === 422 || err.status === 400)) setServerErrors(parseDetail(err.detail));
      else setSubmitError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="page" onSubmit={submit} aria-label="New training job" noValidate>
      <header className="page-head">
        <h1>New training job</h1>
        <div className="param-estimate" aria-live="polite" data-testid="param-estimate">
          {params != null ? `≈ ${formatCount(params)} parameters` : "parameters: —"}
        </div>
      </header>
      <ErrorBox error={datasets.error} title="Datasets" />
      <section className="card row wrap">
        <label className="inline">
          Dataset
          <select aria-label="Dataset" value={datasetId} onChange={(e) => setDatasetId(e.target.value)}>
            {ready.length === 0 && <option value="">no ready dataset</option>}
            {ready.map((d) => (
              <option key={String(d.id)} value={String(d.id)}>
                {d.name} ({d.kind ?? "?"}, {d.file_count ?? d.files?.length ?? "?"} files)
              </option>
            ))}
          </select>
        </label>
        <label className="inline">
          Device
          <select
            aria-label="Device"
            value={device}
            aria-describedby="device-hint"
            onChange={(e) => {
              const d = e.target.value as Device;
              setDevice(d);
              setConfig((c) => setField(c, "gpu", gpuForDevice(d, c.gpu)));
            }}
          >
            {DEVICE_CHOICES.map((d) => (
              <option key={d.value} value={d.value}>
                {d.label}
              </option>
            ))}
          </select>
        </label>
        <span id="device-hint" className="muted small">
          {devices.length ? `live workers: ${devices.join(", ")}` : "no live worker: the job waits in the queue"}
        </span>
        {byField.device && (
          <span className="field-error" role="alert">
            {byField.device.join("; ")}
          </span>
        )}
        {byField.dataset_id && (
          <span className="field-error" role="alert">
            {byField.dataset_id.join("; ")}
          </span>
        )}
      </section>
      <section className="card" aria-label="Presets">
        <div className="preset-grid" role="group" aria-label="Preset">
          {(["3d", "2d"] as Dims[]).map((dims) =>
            PRESET_SIZES.map((size) => (
              <button
                type="button"
                key={dims + size}
                className={preset.dims === dims && preset.size === size ? "preset active" : "preset"}
                aria-pressed={preset.dims === dims && preset.size === size}
                title={PRESET_NOTES[size]}
                onClick={() => applyPreset(dims, size)}
              >
                {dims.toUpperCase()} {size}
              </button>
            )),
          )}
        </div>
        <p className="muted small">{PRESET_NOTES[preset.size]}. Every field below can be changed.</p>
      </section>
      {global.length > 0 && (
        <div className="notice notice-error" role="alert" aria-label="Validation errors">
          <strong>The server refused this config:</strong>
          <ul>
            {global.map((g, i) => (
              <li key={i}>{g.path ? `${g.path}: ${g.message}` : g.message}</li>
            ))}
          </ul>
        </div>
      )}
      {serverErrors.length > 0 && global.length === 0 && (
        <div className="notice notice-error" role="alert">
          The server refused this config: see the messages next to the fields.
        </div>
      )}
      <div className="tabs" role="tablist" aria-label="Editor">
        <button type="button" role="tab" aria-selected={mode === "form"} onClick={() => switchMode("form")}>
          Form
        </button>
        <button type="button" role="tab" aria-selected={mode === "json"} onClick={() => switchMode("json")}>
          JSON
        </button>
      </div>
      {mode === "form" ? (
        <ConfigForm config={config} errors={byField} onField={(p, v) => setConfig((c) => setField(c, p, v))} />
      ) : (
        <section className="card">
          <label htmlFor="config-json">Config JSON</label>
          <textarea id="config-json" className="json-editor" spellCheck={false} rows={28} value={jsonText} onChange={(e) => setJsonText(e.target.value)} aria-invalid={!!jsonError} />
          {jsonError && (
            <div className="field-error" role="alert">
              Invalid JSON: {jsonError}
            </div>
          )}
        </section>
      )}
      <ErrorBox error={submitError} title="Could not start the job" />
      <div className="row end sticky-actions">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Starting…" : "Start training"}
        </button>
      </div>
    </form>
  );
}
