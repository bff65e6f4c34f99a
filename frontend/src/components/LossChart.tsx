// Live metric chart (uPlot): train and held-out loss by step (or other series, e.g. Dice),
// optional log scale. The chart is rebuilt only when its series or scale change and fed with
// setData as metrics arrive.
import { useRef, useState } from "react";
import type uPlot from "uplot";
import type { MetricOut } from "../api/schema.gen";
import { LOSS_SERIES, chartData, seriesPresent } from "../lib/chartData";
import { useUplot } from "../lib/useUplot";

export type Series = { key: string; label: string; color: string };

interface ChartProps {
  rows: MetricOut[];
  height?: number;
  series?: Series[]; // default: the loss series
  yLabel?: string;
  name?: string; // "Loss": the figure's label and test id
}

export function LossChart({ rows, height = 260, series = LOSS_SERIES, yLabel = "loss", name = "Loss" }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const [logScale, setLogScale] = useState(false);
  const keys = seriesPresent(rows, series.map((s) => s.key));
  const shown = keys.length ? keys : [series[0].key];
  const data = chartData(rows, shown, logScale);
  const sig = shown.join(",");

  // data flows in without a rebuild; the chart is built again only for new series or scale
  useUplot(
    box,
    (width) => ({
      width,
      height,
      scales: { x: { time: false }, y: logScale ? { distr: 3 } : {} },
      axes: [{ label: "step" }, { label: yLabel, size: 60 }],
      series: [
        { label: "step" },
        ...shown.map((k) => {
          const s = series.find((x) => x.key === k)!;
          return { label: s.label, stroke: s.color, width: 2, spanGaps: true, points: { show: data[0].length < 40 } };
        }),
      ],
      legend: { show: true },
    }),
    data as uPlot.AlignedData,
    [height, sig, logScale],
  );

  return (
    <figure className="chart" aria-label={`${name} chart`}>
      <label className="chart-toggle">
        <input type="checkbox" checked={logScale} onChange={(e) => setLogScale(e.target.checked)} /> Log scale
      </label>
      <div ref={box} className="chart-box" data-testid={`${name.toLowerCase()}-chart`} />
      {data[0].length === 0 && <figcaption className="muted">No {name.toLowerCase()} values yet.</figcaption>}
    </figure>
  );
}
