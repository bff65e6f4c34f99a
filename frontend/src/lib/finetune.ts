// Fine-tune and study jobs in the UI: the Dice series of a fine-tune job's metric rows (one per
// foreground class, coloured like the class in the label overlay), and a study's curves.
import type { MetricOut, StudyOut } from "../api/schema.gen";
import type { Series } from "../components/LossChart";
import { classCss } from "./labelColors";

// the worker flattens the engine's val_dice_per_class {"1": x} into val_dice_1
const PER_CLASS = /^val_dice_(\d+)$/;

/** Mean held-out Dice, then one series per class found in the rows, in class order. */
export function diceSeries(rows: MetricOut[]): Series[] {
  const classes = new Set<number>();
  for (const r of rows) for (const k of Object.keys(r)) {
    const m = PER_CLASS.exec(k);
    if (m) classes.add(Number(m[1]));
  }
  return [
    { key: "val_dice", label: "held-out Dice (mean)", color: "#111827" },
    ...[...classes].sort((a, b) => a - b).map((c) => ({ key: `val_dice_${c}`, label: `class ${c}`, color: classCss(c) })),
  ];
}

export const ARMS = [
  { key: "scratch", label: "scratch", color: "#d6601e" },
  { key: "pretrained", label: "pretrained", color: "#1f68b4" },
] as const;

/** Columns for the label-efficiency chart: x = labelled cases; per arm mean, mean - sd, mean + sd. */
export function studyColumns(study: StudyOut): [number[], ...(number | null)[][]] {
  const rows = [...study.summary].sort((a, b) => a.labelled_cases - b.labelled_cases);
  const cols: (number | null)[][] = [];
  for (const arm of ARMS) {
    const s = rows.map((r) => r[arm.key]);
    cols.push(s.map((x) => x.mean ?? null));
    cols.push(s.map((x) => (x.mean != null ? x.mean - (x.sd ?? 0) : null)));
    cols.push(s.map((x) => (x.mean != null ? x.mean + (x.sd ?? 0) : null)));
  }
  return [rows.map((r) => r.labelled_cases), ...cols];
}
