// New fine-tune (or label-efficiency study) job: a finished train job's weights or scratch, a
// labelled dataset, where to evaluate, the GPUs of a fine-tune job (a study runs as one process),
// and every field of the fine-tune config schema the server serves (the New-job form machinery,
// kind "finetune"), checked live by the server. From a train job the form starts from that job's
// fine-tune config (its U-Net and input keys).
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { api } from "../api/endpoints";
import { ConfigForm } from "../components/ConfigForm";
import { DatasetSelect, DeviceSelect, ErrorList, FieldErrorNote, GpusField, StartBar } from "../components/JobFormParts";
import { ErrorBox } from "../components/Notice";
import { errorPaths, groupFields, withDefaults, writeField, type Config } from "../lib/configForm";
import { useLoad } from "../lib/hooks";
import type { Device } from "../lib/job";
import { setPath } from "../lib/objpath";
import { useLocation } from "../lib/router";
import { useConfigCheck } from "../lib/useConfigCheck";
import { FINETUNE_JOB_FIELDS, formErrors, useJobSubmit } from "../lib/useJobSubmit";

const KIND = "finetune";
// set by the server (from the chosen train job and dataset, DATA_DIR): never typed in here
const SERVER_SET = new Set(["pretrained", "dataset.path", "experiment_path"]);

function parseBudgets(text: string): number[] {
  return text
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean)
    .map(Number);
}

export function NewFinetunePage() {
  const { query } = useLocation();
  const jobs = useLoad(() => api.jobs(), []);
  const datasets = useLoad(() => api.datasets(), []);
  const workers = useLoad(() => api.workers().catch(() => []), []);
  const schema = useLoad(() => api.configSchema(), []);
  const [source, setSource] = useState<string>(query.get("source") ?? "");
  const [datasetId, setDatasetId] = useState("");
  const [evalId, setEvalId] = useState("");
  const [study, setStudy] = useState(false);
  const [budgets, setBudgets] = useState("1, 2, 4, 8");
  const [seeds, setSeeds] = useState(3);
  const [device, setDevice] = useState<Device>("auto");
  const [gpus, setGpus] = useState(1); // a fine-tune job's processes; a study runs as one
  const [config, setConfig] = useState<Config | null>(null);

  const trainJobs = (jobs.data ?? []).filter((j) => j.kind === "train" && j.status === "succeeded");
  const labelled = (datasets.data ?? []).filter((d) => d.status === "ready" && d.labelled);
  const dataset = labelled.find((d) => String(d.id) === datasetId);
  const groups = useMemo(() => {
    if (!schema.data) return [];
    return groupFields(schema.data, KIND)
      .map((g) => ({ ...g, fields: g.fields.filter((f) => !SERVER_SET.has(f.path)), advanced: g.advanced.filter((f) => !SERVER_SET.has(f.path)) }))
      .filter((g) => g.fields.length + g.advanced.length > 0);
  }, [schema.data]);
  const fields = useMemo(() => groups.flatMap((g) => [...g.fields, ...g.advanced]), [groups]);
  const check = useConfigCheck(KIND, config);
  const submit = useJobSubmit(config);

  useEffect(() => {
    if (!datasetId && labelled.length) setDatasetId(String(labelled[0].id));
  }, [labelled.length, datasetId]);
  // the starting config: the source's fine-tune config, or the defaults shaped for the dataset
  useEffect(() => {
    if (!fields.length) return;
    let alive = true;
    if (source) {
      api
        .finetuneConfig(Number(source))
        .then((cfg) => alive && setConfig(withDefaults(cfg as Config, fields)))
        .catch((e) => alive && submit.fail(e));
    } else {
      const base = withDefaults({}, fields);
      setConfig(dataset?.kind ? setPath(base, "is_3d", dataset.kind === "3d") : base);
    }
    return () => {
      alive = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [source, fields.length, source ? null : dataset?.kind]);
  useEffect(() => {
    if (!source) setStudy(false); // a study compares a pretrained model with scratch
  }, [source]);

  const errors = formErrors(submit.refused, check.errors, schema.data ? errorPaths(schema.data, KIND, FINETUNE_JOB_FIELDS) : []);
  const jobError = (name: (typeof FINETUNE_JOB_FIELDS)[number]) => <FieldErrorNote messages={errors.byField[name]} />;

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (!config) return;
    if (!datasetId) return submit.fail(new Error("Choose a labelled dataset first (upload a folder with images/ and labels/ on the Datasets page)."));
    const common = {
      dataset_id: Number(datasetId),
      eval_dataset_id: evalId ? Number(evalId) : null,
      config: config as never,
      device,
    };
    await submit.start(() =>
      study
        ? api.createStudyJob({ ...common, source_job_id: Number(source), labels: parseBudgets(budgets), seeds })
        : api.createFinetuneJob({ ...common, source_job_id: source ? Number(source) : null, gpus }),
    );
  };

  return (
    <form className="page" onSubmit={onSubmit} aria-label="New fine-tune job" noValidate>
      <header className="page-head">
        <h1>{study ? "New label-efficiency study" : source ? `Fine-tune train job #${source}` : "Fine-tune from scratch"}</h1>
      </header>
      <ErrorBox error={jobs.error ?? datasets.error} title="Jobs and datasets" />
      <ErrorBox error={schema.error} title="Config schema" />
      <section className="card row wrap">
        <label className="inline">
          Weights
          <select aria-label="Weights" value={source} onChange={(e) => setSource(e.target.value)}>
            <option value="">scratch (random weights)</option>
            {trainJobs.map((j) => (
              <option key={j.id} value={String(j.id)}>
                train job #{j.id}
              </option>
            ))}
          </select>
        </label>
        {jobError("source_job_id")}
        <DatasetSelect label="Labelled dataset" datasets={labelled} value={datasetId} onChange={setDatasetId} none="no labelled dataset" />
        {jobError("dataset_id")}
        <label className="inline">
          Evaluate on
          <select aria-label="Evaluate on" value={evalId} onChange={(e) => setEvalId(e.target.value)}>
            <option value="">held-out cases of the dataset</option>
            {labelled
              .filter((d) => String(d.id) !== datasetId)
              .map((d) => (
                <option key={d.id} value={String(d.id)}>
                  {d.name}
                </option>
              ))}
          </select>
        </label>
        {jobError("eval_dataset_id")}
        <DeviceSelect value={device} onChange={setDevice} />
        {jobError("device")}
        {!study && <GpusField value={gpus} onChange={setGpus} workers={workers.data ?? []} messages={errors.byField.gpus} />}
      </section>
      <section className="card row wrap" aria-label="Study">
        <label className="inline">
          <input type="checkbox" checked={study} disabled={!source} onChange={(e) => setStudy(e.target.checked)} /> Study: compare with scratch at several label budgets
        </label>
        {study && (
          <>
            <label className="inline">
              Labelled cases
              <input aria-label="Label budgets" value={budgets} onChange={(e) => setBudgets(e.target.value)} />
            </label>
            {jobError("labels")}
            <label className="inline">
              Seeds
              <input aria-label="Seeds" type="number" min={1} value={seeds} onChange={(e) => setSeeds(Number(e.target.value))} />
            </label>
            {jobError("seeds")}
          </>
        )}
        {!source && <span className="muted small">A study needs pretrained weights: choose a train job.</span>}
      </section>
      <ErrorList errors={errors.global} refused={errors.refused} subject="job" />
      {config && <ConfigForm groups={groups} config={config} errors={errors.byField} onField={(f, v) => setConfig((c) => c && writeField(c, f, v, fields))} />}
      <StartBar submit={submit} checkFailure={check.failure} ready={!!config} label={study ? "Start study" : "Start fine-tuning"} />
    </form>
  );
}
