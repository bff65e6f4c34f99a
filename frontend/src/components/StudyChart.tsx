// The label-efficiency chart of a study job (uPlot): held-out Dice against labelled cases, the
// mean of each arm (pretrained, scratch) with its spread over seeds (mean ± sd as a band).
import { useRef } from "react";
import type uPlot from "uplot";
import type { StudyOut } from "../api/schema.gen";
import { ARMS, studyColumns } from "../lib/finetune";
import { useUplot } from "../lib/useUplot";

export function StudyChart({ study, height = 300 }: { study: StudyOut; height?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const data = studyColumns(study);
  const sig = JSON.stringify(data);

  const options = (width: number): uPlot.Options => {
    const series: uPlot.Series[] = [{ label: "labelled cases" }];
    const bands: uPlot.Band[] = [];
    ARMS.forEach((arm, i) => {
      const mean = 1 + 3 * i;
      series.push({ label: `${arm.label} (mean)`, stroke: arm.color, width: 2, points: { show: true, size: 7 } });
      series.push({ label: `${arm.label} − sd`, stroke: arm.color, width: 1, dash: [4, 4], points: { show: false } });
      series.push({ label: `${arm.label} + sd`, stroke: arm.color, width: 1, dash: [4, 4], points: { show: false } });
      bands.push({ series: [mean + 2, mean + 1], fill: `${arm.color}26` });
    });
    return {
      width,
      height,
      // budgets usually double (1, 2, 4, 8): a log2 axis spaces them evenly
      scales: { x: { time: false, distr: 3, log: 2 }, y: { range: [0, 1] } },
      axes: [{ label: "labelled cases" }, { label: "Dice (held-out)", size: 60 }],
      series,
      bands,
      legend: { show: true },
    };
  };
  useUplot(box, options, data as uPlot.AlignedData, [sig, height]);

  return (
    <figure className="chart" aria-label="Label-efficiency chart">
      <div ref={box} className="chart-box" data-testid="study-chart" />
      {data[0].length === 0 && <figcaption className="muted">No finished runs yet.</figcaption>}
    </figure>
  );
}
