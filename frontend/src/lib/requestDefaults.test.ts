import { describe, expect, it } from "vitest";
import { requestDefaults } from "./requestDefaults";

// The shape FastAPI gives a request model whose field is a shared enum with a default.
const doc = {
  components: {
    schemas: {
      Sampler: { enum: ["ddpm", "ddim", "dpmpp2m"], type: "string" },
      SampleJobCreate: {
        properties: {
          sampler: { $ref: "#/components/schemas/Sampler", default: "dpmpp2m" },
          steps: { type: "integer", default: 25 },
          legacy: { allOf: [{ $ref: "#/components/schemas/Sampler" }], default: "ddim" },
          source_job_id: { type: "integer" },
        },
      },
    },
  },
};

describe("requestDefaults", () => {
  it("reads defaults and enum values through $ref, as the API serves them", () => {
    const d = requestDefaults(doc, "SampleJobCreate");
    expect(d.sampler).toEqual({ default: "dpmpp2m", options: ["ddpm", "ddim", "dpmpp2m"] });
    expect(d.steps).toEqual({ default: 25, options: null });
    expect(d.legacy).toEqual({ default: "ddim", options: ["ddpm", "ddim", "dpmpp2m"] });
    expect(d.source_job_id.default).toBeUndefined();
    expect(requestDefaults(doc, "Missing")).toEqual({});
  });
});
