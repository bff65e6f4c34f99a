import { describe, expect, it } from "vitest";
import { ApiError } from "../api/client";
import { errorPaths, type ConfigField, type ConfigSchema } from "./configForm";
import { FINETUNE_JOB_FIELDS, formErrors, startJob, TRAIN_JOB_FIELDS } from "./useJobSubmit";

const field = (path: string): ConfigField => ({
  path, label: path, group: "model", widget: "int", unit: null, advanced: false, description: "",
  default: null, required: false, options: null, minimum: null, maximum: null, nullable: false, parent_nullable: false, requires: null,
});
const schema: ConfigSchema = {
  groups: [{ id: "model", title: "Model" }],
  kinds: {
    train: { json_schema: {}, fields: [field("model.unet.dim"), field("dataset.clip_percentiles")] },
    finetune: { json_schema: {}, fields: [field("model.unet.dim"), field("task.num_classes")] },
  },
};
const refuse = (detail: ConstructorParameters<typeof ApiError>[1]) => () => Promise.reject(new ApiError(422, detail));

// The two New-job forms hand their Start to startJob and show what it returns through formErrors
// with their own field paths: this is the whole way a 422 goes from the server to a field.
async function landing(kind: "train" | "finetune", jobFields: string[], detail: ConstructorParameters<typeof ApiError>[1]) {
  const outcome = await startJob(refuse(detail));
  if (!("refused" in outcome)) throw new Error(`expected a refusal, got ${JSON.stringify(outcome)}`);
  return formErrors(outcome.refused, [], errorPaths(schema, kind, jobFields));
}

describe("starting a job", () => {
  it("gives the new job's id when the server creates it", async () => {
    expect(await startJob(() => Promise.resolve({ id: 42 }))).toEqual({ created: 42 });
  });

  it("keeps any failure but a 422 whole, for the form's one error box", async () => {
    const down = new ApiError(503, "no worker");
    expect(await startJob(() => Promise.reject(down))).toEqual({ failed: down });
    const offline = new TypeError("Failed to fetch");
    expect(await startJob(() => Promise.reject(offline))).toEqual({ failed: offline });
  });
});

describe("a 422 of Start lands at its field", () => {
  it("on the training form: config keys (deeper ones at the nearest field), the GPUs and dataset job fields", async () => {
    const e = await landing("train", TRAIN_JOB_FIELDS, [
      { loc: "config.model.unet.dim", msg: "must be a multiple of 8" },
      { loc: "config.dataset.clip_percentiles.0", msg: "must be below the upper one" },
      { loc: "gpus", msg: "no live worker has 4 GPUs" },
      { loc: "dataset_id", msg: "dataset 9 is not ready" },
      { loc: "config.modle", msg: "unknown key" },
    ]);
    expect(e.byField).toEqual({
      "model.unet.dim": ["must be a multiple of 8"],
      "dataset.clip_percentiles": ["must be below the upper one"],
      gpus: ["no live worker has 4 GPUs"],
      dataset_id: ["dataset 9 is not ready"],
    });
    expect(e.global).toEqual([{ path: "modle", message: "unknown key" }]);
    expect(e.refused).toBe(true);
  });

  it("on the fine-tune form: its own job fields (budgets, seeds, source, gpus) and its config keys", async () => {
    const e = await landing("finetune", FINETUNE_JOB_FIELDS, [
      { loc: "labels", msg: "budgets must be positive" },
      { loc: "seeds", msg: "at least 1" },
      { loc: "source_job_id", msg: "job 3 is not a finished train job" },
      { loc: "gpus", msg: "gpus 3 but the largest live worker on queue cpu has 2" },
      { loc: "config.task.num_classes", msg: "at least 2" },
      { loc: "priority", msg: "not a field of this form" },
    ]);
    expect(e.byField).toEqual({
      labels: ["budgets must be positive"],
      seeds: ["at least 1"],
      source_job_id: ["job 3 is not a finished train job"],
      gpus: ["gpus 3 but the largest live worker on queue cpu has 2"],
      "task.num_classes": ["at least 2"],
    });
    expect(e.global).toEqual([{ path: "priority", message: "not a field of this form" }]);
  });

  it("a refusal that is a sentence stays global", async () => {
    const e = await landing("train", TRAIN_JOB_FIELDS, "the queue is paused");
    expect(e.byField).toEqual({});
    expect(e.global).toEqual([{ path: "", message: "the queue is paused" }]);
  });
});

describe("which errors a form shows", () => {
  const paths = errorPaths(schema, "train", TRAIN_JOB_FIELDS);
  const checked = [{ path: "model.unet.dim", message: "live: multiple of 8" }];

  it("the refusal of Start wins over the live check of the same config", () => {
    const e = formErrors([{ path: "gpus", message: "too many" }], checked, paths);
    expect(e.byField).toEqual({ gpus: ["too many"] });
    expect(e.shown).toEqual([{ path: "gpus", message: "too many" }]);
  });

  it("without a refusal the live check's errors are shown, and not as the server's refusal", () => {
    const e = formErrors([], checked, paths);
    expect(e.byField).toEqual({ "model.unet.dim": ["live: multiple of 8"] });
    expect(e.refused).toBe(false);
  });
});
