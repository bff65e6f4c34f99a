import { describe, expect, it } from "vitest";
import type { MetricOut } from "../api/schema.gen";
import { chartData, numericMetrics, seriesPresent } from "./chartData";

const rows: MetricOut[] = [
  { step: 20, train_loss: 0.8, val_loss: 0.7 },
  { step: 10, train_loss: 0.9 },
  { step: 30, train_loss: 0.5, val_loss: null },
  { step: 20, lr: 1e-3 }, // a second row for the same step merges into it
];

describe("chart data", () => {
  it("sorts steps and leaves gaps where a series has no value", () => {
    expect(seriesPresent(rows, ["train_loss", "val_loss", "grad_norm"])).toEqual(["train_loss", "val_loss"]);
    expect(chartData(rows, ["train_loss", "val_loss"])).toEqual([
      [10, 20, 30],
      [0.9, 0.8, 0.5],
      [null, 0.7, null],
    ]);
  });

  it("drops values a log axis cannot show", () => {
    const d = chartData([{ step: 1, train_loss: 0 }, { step: 2, train_loss: 0.1 }], ["train_loss"], true);
    expect(d[1]).toEqual([null, 0.1]);
  });

  it("lists numeric metrics without bookkeeping keys", () => {
    expect(numericMetrics({ step: 5, time: 1.7e9, epoch: 2, val_loss: 0.2, hist_distance: 0.1, note: "x", bad: NaN })).toEqual([
      ["hist_distance", 0.1],
      ["val_loss", 0.2],
    ]);
    expect(numericMetrics(null)).toEqual([]);
  });
});
