// Every numeric metric of the newest metric step (held-out loss per timestep bin, sample
// intensity statistics, ...), for those who want more than the chart.
import { numericMetrics } from "../lib/chartData";
import { formatNumber } from "../lib/format";

export function LatestMetrics({ row }: { row: Record<string, unknown> | null | undefined }) {
  const items = numericMetrics(row);
  if (items.length === 0) return null;
  return (
    <details className="card log">
      <summary>All metrics{typeof row?.step === "number" ? ` at step ${row.step}` : ""}</summary>
      <dl className="metric-list" aria-label="Latest metrics">
        {items.map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd>{formatNumber(v)}</dd>
          </div>
        ))}
      </dl>
    </details>
  );
}
