import { describe, expect, it } from "vitest";
import type { MetricOut, StudyOut } from "../api/schema.gen";
import { diceSeries, studyColumns } from "./finetune";
import { classCss } from "./labelColors";

describe("diceSeries", () => {
  it("has the mean and one series per class found, coloured like the overlay", () => {
    const rows = [{ step: 3, val_dice: 0.5, val_dice_2: 0.4, val_dice_1: 0.6, val_dice_per_class: undefined }] as unknown as MetricOut[];
    const s = diceSeries(rows);
    expect(s.map((x) => x.key)).toEqual(["val_dice", "val_dice_1", "val_dice_2"]);
    expect(s[2].color).toBe(classCss(2));
  });
});

describe("studyColumns", () => {
  it("gives per arm mean, mean - sd and mean + sd by labelled cases", () => {
    const arm = (mean: number | null, sd: number | null, n: number) => ({ mean, sd, n });
    const study = {
      budgets: [1, 4], seeds: [0, 1], iterations: 10, complete: false, runs: [],
      summary: [
        { labelled_cases: 4, scratch: arm(0.5, 0.1, 2), pretrained: arm(0.8, null, 1), gain: 0.3 },
        { labelled_cases: 1, scratch: arm(null, null, 0), pretrained: arm(0.6, 0.2, 2), gain: null },
      ],
    } as StudyOut;
    const [x, sMean, sLo, sHi, pMean, pLo, pHi] = studyColumns(study);
    expect(x).toEqual([1, 4]);
    expect(sMean).toEqual([null, 0.5]);
    expect(sLo[1]).toBeCloseTo(0.4);
    expect(sHi[1]).toBeCloseTo(0.6);
    expect(pMean).toEqual([0.6, 0.8]);
    expect(pLo[0]).toBeCloseTo(0.4);
    expect(pHi[1]).toBeCloseTo(0.8); // one run: no spread
  });
});
