// The parts both New-job forms (training, fine-tune/study) share: the dataset and device choices,
// the GPUs field, an error beside a job field, the list of errors no field holds, and the Start bar.
import type { DatasetOut, WorkerCapacity } from "../api/schema.gen";
import { capacityText, DEVICE_CHOICES, largestWorker } from "../lib/devices";
import type { FieldError } from "../lib/errors";
import type { Device } from "../lib/job";
import type { JobSubmit } from "../lib/useJobSubmit";
import { ErrorBox } from "./Notice";

/** The messages of one job field (a config field shows its own, in ConfigField). */
export function FieldErrorNote({ messages }: { messages: string[] | undefined }) {
  if (!messages?.length) return null;
  return (
    <span className="field-error" role="alert">
      {messages.join("; ")}
    </span>
  );
}

/** Errors that belong to no field on screen; `subject` names what the server refused ("job"). */
export function ErrorList({ errors, refused, subject }: { errors: FieldError[]; refused: boolean; subject: string }) {
  if (errors.length === 0) return null;
  return (
    <div className="notice notice-error" role="alert" aria-label="Validation errors">
      <strong>{refused ? `The server refused this ${subject}:` : "This config has problems:"}</strong>
      <ul>
        {errors.map((g, i) => (
          <li key={i}>{g.path ? `${g.path}: ${g.message}` : g.message}</li>
        ))}
      </ul>
    </div>
  );
}

export function DatasetSelect(props: { label: string; datasets: DatasetOut[]; value: string; onChange: (id: string) => void; none: string }) {
  return (
    <label className="inline">
      {props.label}
      <select aria-label={props.label} value={props.value} onChange={(e) => props.onChange(e.target.value)}>
        {props.datasets.length === 0 && <option value="">{props.none}</option>}
        {props.datasets.map((d) => (
          <option key={d.id} value={String(d.id)}>
            {d.name} ({d.kind ?? "?"}, {d.file_count} files)
          </option>
        ))}
      </select>
    </label>
  );
}

// where the job runs is the server's decision from this choice (backend.dispatch)
export function DeviceSelect(props: { value: Device; onChange: (d: Device) => void; describedBy?: string }) {
  return (
    <label className="inline">
      Device
      <select aria-label="Device" value={props.value} aria-describedby={props.describedBy} onChange={(e) => props.onChange(e.target.value as Device)}>
        {DEVICE_CHOICES.map((d) => (
          <option key={d.value} value={d.value}>
            {d.label}
          </option>
        ))}
      </select>
    </label>
  );
}

/** The job's process count (a job field, not a config key): at most the largest live worker,
 *  whose capacities the hint lists; `messages` are the server's 422 for `gpus`. */
export function GpusField(props: {
  value: number;
  onChange: (gpus: number) => void;
  workers: (Pick<WorkerCapacity, "device" | "gpus"> & { name: string })[];
  messages: string[] | undefined;
}) {
  const { workers, messages } = props;
  return (
    <>
      <label className="inline" title="Processes the job runs as, one per GPU (on a CPU worker: CPU processes). dataset.batch_size stays the global batch, split across them.">
        GPUs
        <input
          type="number"
          aria-label="GPUs"
          min={1}
          max={Math.max(1, largestWorker(workers))}
          step={1}
          value={props.value}
          aria-describedby="gpus-hint"
          aria-invalid={!!messages}
          onChange={(e) => props.onChange(Math.max(1, Math.floor(Number(e.target.value) || 1)))}
        />
      </label>
      <span id="gpus-hint" className="muted small" data-testid="worker-capacity">
        {workers.length ? `largest worker: ${largestWorker(workers)} (${workers.map((w) => `${w.name}: ${capacityText(w)}`).join(", ")})` : ""}
      </span>
      <FieldErrorNote messages={messages} />
    </>
  );
}

/** Why the job could not start (else why the live check could not run), then the Start button. */
export function StartBar({ submit, checkFailure, ready, label }: { submit: JobSubmit; checkFailure: unknown; ready: boolean; label: string }) {
  return (
    <>
      <ErrorBox error={submit.error ?? checkFailure} title={submit.error ? "Could not start the job" : "Config check"} />
      <div className="row end sticky-actions">
        <button type="submit" className="primary" disabled={submit.busy || !ready}>
          {submit.busy ? "Starting…" : label}
        </button>
      </div>
    </>
  );
}
