export function ProgressBar(props: { label: string; fraction: number; text?: string }) {
  const pct = Math.max(0, Math.min(100, props.fraction * 100));
  return (
    <div className="progress-wrap">
      <div
        className="progress"
        role="progressbar"
        aria-label={props.label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(pct * 10) / 10}
        aria-valuetext={props.text ?? `${pct.toFixed(0)}%`}
      >
        <div className="progress-fill" style={{ width: `${pct}%` }} />
      </div>
      {props.text && <div className="progress-text">{props.text}</div>}
    </div>
  );
}
