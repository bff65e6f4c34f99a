// New training job: dataset, device, a preset, every config field of the schema the server
// serves (or raw JSON), checked live by the server (errors beside the fields, the exact
// parameter count and a training-memory estimate), and the job's own 422 messages.
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { api } from "../api/endpoints";
import type { Preset } from "../api/schema.gen";
import { ConfigForm } from "../components/ConfigForm";
import { DatasetSelect, DeviceSelect, ErrorList, FieldErrorNote, GpusField, StartBar } from "../components/JobFormParts";
import { ErrorBox } from "../components/Notice";
import { errorPaths, groupFields, withDefaults, withoutUnavailable, writeField, type Config } from "../lib/configForm";
import { useConfigCheck } from "../lib/useConfigCheck";
import { liveDevices, liveHardware } from "../lib/devices";
import { formatBytes, formatCount } from "../lib/format";
import { useLoad } from "../lib/hooks";
import { deepClone } from "../lib/objpath";
import { matchingPreset } from "../lib/presetChoice";
import type { Device } from "../lib/job";
import { useLocation } from "../lib/router";
import { formErrors, TRAIN_JOB_FIELDS, useJobSubmit } from "../lib/useJobSubmit";

const KIND = "train";

export function NewJobPage() {
  const { query } = useLocation();
  const datasets = useLoad(() => api.datasets(), []);
  const workers = useLoad(() => api.workers().catch(() => []), []);
  const schema = useLoad(() => api.configSchema(), []);
  const presetList = useLoad(() => api.configPresets(), []);
  const presets = useMemo(() => (presetList.data ?? []).filter((p) => p.kind === KIND), [presetList.data]);
  const ready = (datasets.data ?? []).filter((d) => d.status === "ready");
  const [datasetId, setDatasetId] = useState<string>(query.get("dataset") ?? "");
  const [preset, setPreset] = useState<Preset | null>(null);
  const [config, setConfig] = useState<Config | null>(null);
  const [device, setDevice] = useState<Device>("auto");
  const [gpus, setGpus] = useState(1); // a job field (processes it runs as), not a config key
  const [mode, setMode] = useState<"form" | "json">("form");
  const [jsonText, setJsonText] = useState("");
  const [jsonError, setJsonError] = useState<string | null>(null);

  const dataset = ready.find((d) => String(d.id) === datasetId);
  const devices = liveDevices(workers.data ?? []);
  const groups = useMemo(() => (schema.data ? groupFields(schema.data, KIND) : []), [schema.data]);
  const fields = useMemo(() => groups.flatMap((g) => [...g.fields, ...g.advanced]), [groups]);
  const check = useConfigCheck(KIND, config, device);
  const submit = useJobSubmit(config);

  const applyPreset = (p: Preset) => {
    const cfg = withDefaults(deepClone(p.config) as Config, fields);
    setPreset(p);
    setConfig(cfg);
    submit.forgetRefusal();
    if (mode === "json") setJsonText(JSON.stringify(cfg, null, 2));
  };

  // Pick the first ready dataset, and a preset that fits its kind (2D/3D).
  useEffect(() => {
    if (!datasetId && ready.length) setDatasetId(String(ready[0].id));
  }, [ready.length, datasetId]);
  useEffect(() => {
    if (presets.length === 0) return;
    const want = dataset?.kind ? dataset.kind === "3d" : null;
    const next = matchingPreset(presets, preset, want);
    if (next && next !== preset) applyPreset(next);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [presets, dataset?.id, dataset?.kind]);

  const errors = formErrors(submit.refused, check.errors, schema.data ? errorPaths(schema.data, KIND, TRAIN_JOB_FIELDS) : []);
  const byField = errors.byField;
  // the JSON editor hides the fields, so there every error is listed at the top
  const global = mode === "json" ? errors.shown : errors.global;

  const switchMode = (m: "form" | "json") => {
    if (m === mode) return;
    if (m === "json") setJsonText(JSON.stringify(config, null, 2));
    else if (!applyJson()) return;
    setMode(m);
  };

  const applyJson = (): Config | null => {
    try {
      const parsed = JSON.parse(jsonText);
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("the config must be a JSON object");
      setConfig(parsed as Config);
      setJsonError(null);
      return parsed as Config;
    } catch (e) {
      setJsonError(e instanceof Error ? e.message : String(e));
      return null;
    }
  };

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    const cfg = mode === "json" ? applyJson() : config;
    if (!cfg) return;
    if (!datasetId) return submit.fail(new Error("Choose a dataset first (upload one on the Datasets page)."));
    await submit.start(() => api.createTrainJob({ dataset_id: Number(datasetId), config: cfg as never, device, gpus }));
  };

  return (
    <form className="page" onSubmit={onSubmit} aria-label="New training job" noValidate>
      <header className="page-head">
        <h1>New training job</h1>
        <div className="param-estimate" aria-live="polite" data-testid="param-estimate" data-state={check.state}>
          {check.result?.param_count != null ? <span title={`≈ ${formatCount(check.result.param_count)}`}>{check.result.param_count.toLocaleString("en-US")} parameters</span> : "parameters: —"}
          {check.result?.train_memory_bytes != null && <span data-testid="memory-estimate"> · ≈ {formatBytes(check.result.train_memory_bytes)} to train</span>}
        </div>
      </header>
      <ErrorBox error={datasets.error} title="Datasets" />
      <ErrorBox error={schema.error ?? presetList.error} title="Config schema" />
      <section className="card row wrap">
        <DatasetSelect label="Dataset" datasets={ready} value={datasetId} onChange={setDatasetId} none="no ready dataset" />
        <DeviceSelect value={device} onChange={setDevice} describedBy="device-hint" />
        <span id="device-hint" className="muted small">
          {devices.length ? `live workers: ${devices.join(", ")}` : "no live worker: the job waits in the queue"}
        </span>
        <GpusField value={gpus} onChange={setGpus} workers={workers.data ?? []} messages={byField.gpus} />
        <FieldErrorNote messages={byField.device} />
        <FieldErrorNote messages={byField.dataset_id} />
      </section>
      <section className="card" aria-label="Presets">
        <div className="preset-grid" role="group" aria-label="Preset">
          {presets.map((p) => (
            <button type="button" key={p.name} className={preset?.name === p.name ? "preset active" : "preset"} aria-pressed={preset?.name === p.name} title={p.note} onClick={() => applyPreset(p)}>
              {p.title}
            </button>
          ))}
        </div>
        {preset && <p className="muted small">{preset.note} Every field below can be changed.</p>}
      </section>
      <ErrorList errors={global} refused={errors.refused} subject="config" />
      {(check.result?.warnings ?? []).length > 0 && (
        <div className="notice notice-warning" role="status" data-testid="config-warnings">
          <ul>
            {check.result!.warnings!.map((w, i) => (
              <li key={i} data-loc={w.loc}>
                {w.msg}
              </li>
            ))}
          </ul>
        </div>
      )}
      {errors.refused && global.length === 0 && (
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
        config && <ConfigForm groups={withoutUnavailable(groups, liveHardware(workers.data ?? []), byField)} config={config} errors={byField} onField={(f, v) => setConfig((c) => c && writeField(c, f, v, fields))} />
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
      <StartBar submit={submit} checkFailure={check.failure} ready={!!config} label="Start training" />
    </form>
  );
}
