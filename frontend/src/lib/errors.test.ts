import { describe, expect, it } from "vitest";
import { FIELD_PATHS } from "./configFields";
import { detailText, mapErrorsToFields, parseDetail } from "./errors";

describe("parseDetail", () => {
  it("reads FastAPI/pydantic errors and strips body/config prefixes", () => {
    const detail = [
      { loc: ["body", "config", "model", "lr"], msg: "Input should be greater than 0", type: "greater_than" },
      { loc: ["body", "dataset_id"], msg: "Field required" },
    ];
    expect(parseDetail(detail)).toEqual([
      { path: "model.lr", message: "Input should be greater than 0" },
      { path: "dataset_id", message: "Field required" },
    ]);
  });

  it("reads dotted string locations, [path, msg] pairs, plain strings and {errors: []}", () => {
    expect(parseDetail([{ loc: "config.model.unet.dim", msg: "must be a multiple of 8" }])).toEqual([{ path: "model.unet.dim", message: "must be a multiple of 8" }]);
    expect(parseDetail([["dataset.image_size", "not divisible by 4"]])).toEqual([{ path: "dataset.image_size", message: "not divisible by 4" }]);
    expect(parseDetail("dataset 3 is not ready")).toEqual([{ path: "", message: "dataset 3 is not ready" }]);
    expect(parseDetail({ errors: [{ path: "model.optimizer", message: "'sgd' is not allowed" }] })).toEqual([{ path: "model.optimizer", message: "'sgd' is not allowed" }]);
    expect(parseDetail(null)).toEqual([]);
  });

  it("makes one line of text for file rows", () => {
    expect(detailText({ loc: ["path", "file_path"], msg: "'../x.nii' escapes the dataset" })).toBe("file_path: '../x.nii' escapes the dataset");
    expect(detailText("scan.nii.gz: not a NIfTI file (bad magic)")).toBe("scan.nii.gz: not a NIfTI file (bad magic)");
  });
});

describe("mapErrorsToFields", () => {
  it("attaches errors to their field, deeper paths to the nearest field, the rest globally", () => {
    const errs = parseDetail([
      { loc: ["body", "config", "model", "unet", "num_head_channels"], msg: "does not divide" },
      { loc: ["body", "config", "dataset", "clip_percentiles", 0], msg: "too low" },
      { loc: ["body", "config", "modle"], msg: "unknown key (did you mean 'model'?)" },
      { loc: ["body", "config", "gpu"], msg: "must be >= -1" },
      { loc: "device", msg: "Input should be 'auto', 'cpu' or 'gpu'" },
    ]);
    const { byField, global } = mapErrorsToFields(errs, FIELD_PATHS);
    expect(byField["model.unet.num_head_channels"]).toEqual(["does not divide"]);
    expect(byField["dataset.clip_percentiles"]).toEqual(["too low"]);
    expect(byField["gpu"]).toEqual(["must be >= -1"]);
    expect(byField["device"]).toEqual(["Input should be 'auto', 'cpu' or 'gpu'"]);
    expect(global).toEqual([{ path: "modle", message: "unknown key (did you mean 'model'?)" }]);
  });
});
