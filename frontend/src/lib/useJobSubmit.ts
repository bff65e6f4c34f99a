// Starting a job from a New-job form (train, fine-tune, study): the busy state, the server's 422
// shown at the fields it names until the config changes, any other failure as one error, and the
// move to the new job's page. Both New-job pages start their jobs through this one hook.
import { useEffect, useState } from "react";
import { ApiError } from "../api/client";
import type { FinetuneJobRequest, StudyJobRequest, TrainJobRequest } from "../api/endpoints";
import { fieldErrors, mapErrorsToFields, type FieldError } from "./errors";
import { navigate } from "./router";

// The job's own fields each form shows beside the config, so that a 422 on one lands at its
// input; typed against the generated request models, so a renamed field fails to compile here.
export const TRAIN_JOB_FIELDS = ["device", "dataset_id", "gpus"] satisfies (keyof TrainJobRequest)[];
export const FINETUNE_JOB_FIELDS = ["device", "dataset_id", "eval_dataset_id", "source_job_id", "gpus", "labels", "seeds"] satisfies (
  | keyof FinetuneJobRequest
  | keyof StudyJobRequest
)[];

export type StartOutcome = { created: number } | { refused: FieldError[] } | { failed: unknown };

/** Create the job and say how it went: created (its id), refused field by field (422), or failed. */
export async function startJob(create: () => Promise<{ id: number }>): Promise<StartOutcome> {
  try {
    return { created: (await create()).id };
  } catch (err) {
    if (err instanceof ApiError && err.status === 422) return { refused: fieldErrors(err.detail) };
    return { failed: err };
  }
}

export interface FormErrors {
  byField: Record<string, string[]>;
  global: FieldError[];
  shown: FieldError[]; // every error the form shows (the JSON editor lists them all at the top)
  refused: boolean; // they are the server's answer to Start, not the live check's
}

/** The errors a form shows: the 422 of Start while it is current (it wins over the live check of
 * the same config), else the live check's; each at the nearest form field, the rest global. */
export function formErrors(refused: FieldError[], checked: FieldError[], fieldPaths: Iterable<string>): FormErrors {
  const shown = refused.length ? refused : checked;
  return { ...mapErrorsToFields(shown, fieldPaths), shown, refused: refused.length > 0 };
}

export interface JobSubmit {
  busy: boolean;
  refused: FieldError[]; // the 422 of the last Start, until the config changes
  error: unknown; // why the job could not start, when it was not a 422
  fail: (error: unknown) => void; // the form itself found a reason not to start
  forgetRefusal: () => void;
  start: (create: () => Promise<{ id: number }>) => Promise<void>;
}

export function useJobSubmit(config: unknown): JobSubmit {
  const [busy, setBusy] = useState(false);
  const [refused, setRefused] = useState<FieldError[]>([]);
  const [error, setError] = useState<unknown>(null);
  // a 422 of Start belongs to the config it was about; an edit makes the live check current again
  const configText = JSON.stringify(config ?? null);
  useEffect(() => setRefused([]), [configText]);

  const start = async (create: () => Promise<{ id: number }>) => {
    setBusy(true);
    setError(null);
    setRefused([]);
    const outcome = await startJob(create);
    setBusy(false);
    if ("created" in outcome) navigate(`/jobs/${outcome.created}`);
    else if ("refused" in outcome) setRefused(outcome.refused);
    else setError(outcome.failed);
  };
  return { busy, refused, error, fail: (e: unknown) => setError(() => e), forgetRefusal: () => setRefused([]), start };
}
