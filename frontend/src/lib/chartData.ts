// Metric rows -> uPlot's columnar data: one x column of steps and one column per series
// (null where a row lacks the value, so uPlot leaves a gap instead of drawing zero).
import type { MetricOut as MetricRow } from "../api/schema.gen";

export const LOSS_SERIES = [
  { key: "train_loss", label: "train loss", color: "#2563eb" },
  { key: "val_loss", label: "held-out loss", color: "#f97316" },
];

export function seriesPresent(rows: MetricRow[], keys: string[]): string[] {
  return keys.filter((k) => rows.some((r) => typeof r[k] === "number" && Number.isFinite(r[k] as number)));
}

export function chartData(rows: MetricRow[], keys: string[], logScale = false): [number[], ...(number | null)[][]] {
  const byStep = new Map<number, MetricRow>();
  for (const r of rows) if (typeof r.step === "number") byStep.set(r.step, { ...byStep.get(r.step), ...r });
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  const cols = keys.map((k) =>
    steps.map((s) => {
      const v = byStep.get(s)![k];
      // a log axis cannot show values <= 0
      return typeof v === "number" && Number.isFinite(v) && (!logScale || v > 0) ? v : null;
    }),
  );
  return [steps, ...cols];
}

/** Metric rows with the training loss taken from the live progress points where there are any
 * (one every second or so, instead of one per metric step); held-out loss stays the metric rows'. */
export function lossRows(metrics: MetricRow[], live: Array<[number, number]>): MetricRow[] {
  if (live.length === 0) return metrics;
  const held = metrics.map(({ train_loss: _drop, ...rest }) => rest as MetricRow);
  return [...held, ...live.map(([step, loss]) => ({ step, train_loss: loss }) as MetricRow)];
}

/** Numeric metrics of a row for the "latest metrics" list, bookkeeping keys left out. */
export function numericMetrics(row: Record<string, unknown> | null | undefined): Array<[string, number]> {
  if (!row) return [];
  const skip = new Set(["step", "time", "epoch"]);
  return Object.entries(row)
    .filter((e): e is [string, number] => !skip.has(e[0]) && typeof e[1] === "number" && Number.isFinite(e[1]))
    .sort((a, b) => a[0].localeCompare(b[0]));
}
