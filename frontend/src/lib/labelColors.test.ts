import { describe, expect, it } from "vitest";
import { classColor, labelColormap } from "./labelColors";

describe("label colours", () => {
  it("gives each class its own colour and background none", () => {
    expect(classColor(1)).not.toEqual(classColor(2));
    const cm = labelColormap([2, 1]);
    expect(cm.I).toEqual([0, 1, 2]);
    expect(cm.A[0]).toBe(0);
    expect([cm.R[2], cm.G[2], cm.B[2]]).toEqual(classColor(2));
    expect(cm.labels).toEqual(["background", "class 1", "class 2"]);
  });
  it("covers classes missing between the ones found", () => {
    expect(labelColormap([3]).I).toEqual([0, 1, 2, 3]);
  });
});
