import { describe, expect, it } from "vitest";
import { RateEstimator } from "./rate";

describe("RateEstimator", () => {
  it("measures it/s and ETA over a sliding window", () => {
    const r = new RateEstimator(10);
    expect(r.rate()).toBeNull();
    r.add(0, 100);
    r.add(20, 102);
    expect(r.rate()).toBeCloseTo(10);
    expect(r.eta(120)).toBeCloseTo(10);
    // slows down: old points leave the window
    for (let t = 103; t <= 130; t++) r.add(20 + (t - 102), t);
    expect(r.rate()).toBeCloseTo(1, 1);
  });

  it("starts over when the step goes back (job resumed from a checkpoint)", () => {
    const r = new RateEstimator();
    r.add(100, 0);
    r.add(200, 10);
    r.add(50, 11);
    expect(r.rate()).toBeNull();
    r.add(60, 12);
    expect(r.rate()).toBeCloseTo(10);
  });
});
