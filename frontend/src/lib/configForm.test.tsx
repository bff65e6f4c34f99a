import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { ConfigForm } from "../components/ConfigForm";
import { errorPaths, groupFields, readField, withDefaults, withoutUnavailable, writeField, type ConfigField, type ConfigSchema } from "./configForm";
import { liveHardware } from "./devices";

const field = (path: string, extra: Partial<ConfigField> = {}): ConfigField => ({
  path, label: path, group: "model", widget: "int", unit: null, advanced: false, description: `about ${path}`,
  default: null, required: false, options: null, minimum: null, maximum: null, nullable: false, parent_nullable: false, requires: null, ...extra,
});

// A schema as GET /api/config/schema serves it, with keys and a group no frontend code names.
const schema: ConfigSchema = {
  groups: [{ id: "model", title: "Model (U-Net)" }, { id: "physics", title: "Physics" }],
  kinds: {
    train: {
      json_schema: {},
      fields: [
        field("model.unet.dim", { label: "Base channels", unit: "channels", default: 32 }),
        field("model.unet.wobble_factor", { label: "Wobble factor", widget: "float", group: "physics", default: 0.25, description: "how much it wobbles" }),
        field("model.flavour", { label: "Flavour", widget: "enum", options: ["sweet", "sour"], default: "sweet", advanced: true }),
        field("schedule.test.n_timestep", { label: "Test steps", widget: "optional_int", default: 1000, parent_nullable: true }),
        field("schedule.test.schedule", { label: "Test schedule", widget: "enum", options: ["linear", "cosine"], nullable: true, parent_nullable: true }),
        field("data.window", { label: "Window", widget: "pair", required: true, parent_nullable: true }),
      ],
    },
  },
};

describe("the New-job form from the served schema", () => {
  it("shows an input for a key the code has never seen, in its served group, with its label, unit and description", () => {
    const groups = groupFields(schema, "train");
    const html = renderToStaticMarkup(
      <ConfigForm groups={groups} config={{ model: { unet: { dim: 32, wobble_factor: 0.25 }, flavour: "sour" } }} errors={{ "model.unet.wobble_factor": ["too wobbly"] }} onField={() => undefined} />,
    );
    expect(html).toMatch(/<legend>Physics<\/legend>/);
    expect(html).toMatch(/<label for="cfg-model-unet-wobble_factor">Wobble factor<\/label><input id="cfg-model-unet-wobble_factor"[^>]*value="0.25"/);
    expect(html).toContain("how much it wobbles");
    expect(html).toMatch(/id="cfg-model-unet-wobble_factor-err"[^>]*>too wobbly</);
    expect(html).toMatch(/<label for="cfg-model-unet-dim">Base channels \(channels\)<\/label>/);
    // advanced keys are there too, folded under "More"
    expect(html).toMatch(/<details class="advanced"><summary>More model \(u-net\) settings \(1\)<\/summary>/);
    expect(html).toMatch(/<select id="cfg-model-flavour"[^>]*><option value="sweet">sweet<\/option><option value="sour" selected="">sour<\/option>/);
    for (const f of schema.kinds.train.fields) expect(html).toContain(`id="cfg-${f.path.replace(/\./g, "-")}"`);
  });

  it("groups in the served order, a group without fields left out, unknown groups appended", () => {
    const only: ConfigSchema = { groups: [{ id: "a", title: "A" }, { id: "b", title: "B" }], kinds: { train: { json_schema: {}, fields: [field("x", { group: "b" }), field("y", { group: "zz" })] } } };
    expect(groupFields(only, "train").map((g) => [g.id, g.fields.map((f) => f.path)])).toEqual([["b", ["x"]], ["zz", ["y"]]]);
    expect(groupFields(only, "finetune")).toEqual([]);
    expect(errorPaths(only, "train")).toEqual(["x", "y", "device", "dataset_id"]);
  });

  it("creates an optional parent object with its served defaults when one of its keys gets a value, and removes it when cleared", () => {
    const fields = schema.kinds.train.fields;
    const steps = fields.find((f) => f.path === "schedule.test.n_timestep")!;
    const sched = fields.find((f) => f.path === "schedule.test.schedule")!;
    let cfg: Record<string, unknown> = { schedule: { test: null } };
    expect(readField(cfg, steps)).toBeNull();
    cfg = writeField(cfg, steps, 250, fields);
    expect(cfg.schedule).toEqual({ test: { n_timestep: 250, schedule: null } });
    cfg = writeField(cfg, sched, "cosine", fields);
    expect(cfg.schedule).toEqual({ test: { n_timestep: 250, schedule: "cosine" } });
    cfg = writeField(cfg, sched, null, fields); // nullable key: null is its value, the parent stays
    expect(cfg.schedule).toEqual({ test: { n_timestep: 250, schedule: null } });
    cfg = writeField(cfg, steps, null, fields); // a non-nullable key cleared: no parent object
    expect(cfg.schedule).toEqual({ test: null });
    const win = fields.find((f) => f.path === "data.window")!;
    expect(writeField({}, win, [-1000, 400], fields)).toEqual({ data: { window: [-1000, 400] } });
  });

  it("fills the keys a preset leaves out with their served defaults, optional objects left absent", () => {
    const fields = schema.kinds.train.fields;
    expect(withDefaults({ model: { unet: { dim: 8 } } }, fields)).toEqual({ model: { unet: { dim: 8, wobble_factor: 0.25 }, flavour: "sweet" } });
  });
});

describe("fields that need hardware", () => {
  const groups = groupFields(
    { groups: [{ id: "general", title: "General" }], kinds: { train: { json_schema: {}, fields: [field("seed", { group: "general" }), field("gpu", { group: "general", advanced: true, requires: "gpu" })] } } },
    "train",
  );
  const paths = (gs: ReturnType<typeof groupFields>) => gs.flatMap((g) => [...g.fields, ...g.advanced].map((f) => f.path));

  it("are shown only when a live worker has it, or when they carry an error", () => {
    expect(paths(withoutUnavailable(groups, liveHardware([{ device: "cpu" }])))).toEqual(["seed"]);
    expect(paths(withoutUnavailable(groups, liveHardware([{ device: "cpu" }, { device: "cuda:0 (GPU 3)" }])))).toEqual(["seed", "gpu"]);
    expect(paths(withoutUnavailable(groups, liveHardware([]), { gpu: ["must be >= -1"] }))).toEqual(["seed", "gpu"]);
  });
});
