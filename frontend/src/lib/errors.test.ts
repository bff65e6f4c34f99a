import { describe, expect, it } from "vitest";
import { detailText, fieldErrors, mapErrorsToFields } from "./errors";

describe("fieldErrors", () => {
  it("reads the API's {loc, msg} items and strips the config prefix of config keys", () => {
    expect(
      fieldErrors([
        { loc: "config.model.lr", msg: "must be > 0" },
        { loc: "dataset_id", msg: "dataset 3 does not exist" },
      ]),
    ).toEqual([
      { path: "model.lr", message: "must be > 0" },
      { path: "dataset_id", message: "dataset 3 does not exist" },
    ]);
  });

  it("reads a plain sentence as one global error", () => {
    expect(fieldErrors("dataset 3 is not ready")).toEqual([{ path: "", message: "dataset 3 is not ready" }]);
  });

  it("makes one line of text for file rows", () => {
    expect(detailText([{ loc: "file_path", msg: "'../x.nii' escapes the dataset" }])).toBe("file_path: '../x.nii' escapes the dataset");
    expect(detailText("scan.nii.gz: not a NIfTI file (bad magic)")).toBe("scan.nii.gz: not a NIfTI file (bad magic)");
    expect(detailText([{ loc: "a", msg: "x" }, { loc: "", msg: "y" }])).toBe("a: x; y");
  });
});

describe("mapErrorsToFields", () => {
  it("attaches errors to their field, deeper paths to the nearest field, the rest globally", () => {
    const errs = fieldErrors([
      { loc: "config.model.unet.num_head_channels", msg: "does not divide" },
      { loc: "config.dataset.clip_percentiles.0", msg: "too low" },
      { loc: "config.modle", msg: "unknown key (did you mean 'model'?)" },
      { loc: "config.gpu", msg: "must be >= -1" },
      { loc: "device", msg: "Input should be 'auto', 'cpu' or 'gpu'" },
    ]);
    const fields = ["model.unet.num_head_channels", "dataset.clip_percentiles", "gpu", "device"];
    const { byField, global } = mapErrorsToFields(errs, fields);
    expect(byField["model.unet.num_head_channels"]).toEqual(["does not divide"]);
    expect(byField["dataset.clip_percentiles"]).toEqual(["too low"]);
    expect(byField["gpu"]).toEqual(["must be >= -1"]);
    expect(byField["device"]).toEqual(["Input should be 'auto', 'cpu' or 'gpu'"]);
    expect(global).toEqual([{ path: "modle", message: "unknown key (did you mean 'model'?)" }]);
  });
});
