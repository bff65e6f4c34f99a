import { describe, expect, it } from "vitest";
import { capacityText, largestWorker, liveDevices } from "./devices";
import { getPath, setPath } from "./objpath";
import { matchPath } from "./router";
import { sampleIs3d } from "./sampleKind";
import { groupByStep } from "../components/SampleGallery";
import { sampleParamsText } from "../components/ConfigSummary";

describe("small helpers", () => {
  it("matchPath", () => {
    expect(matchPath("/jobs/:id", "/jobs/12")).toEqual({ id: "12" });
    expect(matchPath("/jobs/:id", "/jobs/12/x")).toBeNull();
    expect(matchPath("/datasets/:id", "/jobs/1")).toBeNull();
  });

  it("getPath / setPath copy on write", () => {
    const a = { model: { unet: { dim: 8 } } };
    const b = setPath(a, "model.unet.dim", 16);
    expect(getPath(b, "model.unet.dim")).toBe(16);
    expect(a.model.unet.dim).toBe(8);
    expect(getPath(setPath(a, "dataset.intensity.window", [1, 2]), "dataset.intensity.window")).toEqual([1, 2]);
    expect(getPath(a, "x.y")).toBeUndefined();
  });

  it("lists the live workers' devices, GPUs first", () => {
    expect(liveDevices([{ device: "cpu" }, { device: "cuda:1" }, { device: "cuda:0" }, { device: "cpu" }])).toEqual(["cuda:0", "cuda:1", "cpu"]);
  });

  it("says what a worker holds in its own unit and finds the largest", () => {
    expect(capacityText({ device: "cuda:0-1 (GPUs 0,1)", gpus: 2 })).toBe("2 GPUs");
    expect(capacityText({ device: "cuda:0 (GPU 3)", gpus: 1 })).toBe("1 GPU");
    expect(capacityText({ device: "cpu", gpus: 2 })).toBe("2 processes");
    expect(capacityText({ device: "cpu", gpus: 1 })).toBe("1 process");
    expect(largestWorker([{ gpus: 1 }, { gpus: 4 }, { gpus: 2 }])).toBe(4);
    expect(largestWorker([])).toBe(0);
  });

  it("decides 3D vs 2D samples as the API documents it (a .nii.gz or only a PNG)", () => {
    expect(sampleIs3d({ volume_url: "/api/samples/1/volume.nii.gz" })).toBe(true);
    expect(sampleIs3d({ volume_url: null })).toBe(false);
  });

  it("groups metric-step samples newest step first", () => {
    const mk = (id: number, step: number | null, index: number) => ({ id, job_id: 1, step, index, shape: [16, 16], volume_url: null, preview_url: null, created_at: "" });
    const g = groupByStep([mk(1, 20, 1), mk(2, 20, 0), mk(3, 40, 0), mk(4, null, 0)]);
    expect(g.map((x) => x.step)).toEqual([40, 20, null]);
    expect(g[1].items.map((x) => x.index)).toEqual([0, 1]);
  });
});

describe("sample job parameters", () => {
  it("reads as one line", () => {
    expect(sampleParamsText({ num_samples: 4, sampler: "ddim", steps: 50, seed: 0 })).toBe("4 samples · ddim · 50 steps · seed 0");
    expect(sampleParamsText({ num_samples: 1, sampler: "ddpm" })).toBe("1 sample · ddpm");
    expect(sampleParamsText(null)).toBe("");
  });
});
