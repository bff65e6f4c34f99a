// Preview images of a job's samples, grouped by the training step that made them.
import type { SampleOut } from "../api/schema.gen";
import { AuthImage } from "./AuthMedia";

export function groupByStep(samples: SampleOut[]): Array<{ step: number | null; items: SampleOut[] }> {
  const groups = new Map<number | null, SampleOut[]>();
  for (const s of samples) {
    const k = typeof s.step === "number" ? s.step : null;
    (groups.get(k) ?? groups.set(k, []).get(k)!).push(s);
  }
  return [...groups.entries()]
    .sort((a, b) => (b[0] ?? -1) - (a[0] ?? -1))
    .map(([step, items]) => ({ step, items: items.sort((a, b) => a.index - b.index) }));
}

function Preview({ sample }: { sample: SampleOut }) {
  return sample.preview_url ? <AuthImage src={sample.preview_url} alt={`sample ${sample.index}`} /> : <div className="img-missing">no preview</div>;
}

export function SampleGallery({ samples, onSelect }: { samples: SampleOut[]; onSelect?: (s: SampleOut) => void }) {
  if (samples.length === 0) return <p className="muted">No samples yet.</p>;
  return (
    <div className="gallery-groups">
      {groupByStep(samples).map((g) => (
        <div key={String(g.step)} className="gallery-group">
          <h3>{g.step != null ? `Step ${g.step}` : "Samples"}</h3>
          <div className="gallery">
            {g.items.map((s) => (
              <figure key={String(s.id)} className="thumb">
                {onSelect ? (
                  <button type="button" className="thumb-button" aria-label={`Open sample ${s.index}${g.step != null ? ` of step ${g.step}` : ""}`} onClick={() => onSelect(s)}>
                    <Preview sample={s} />
                  </button>
                ) : (
                  <Preview sample={s} />
                )}
                <figcaption>#{s.index}</figcaption>
              </figure>
            ))}
          </div>
        </div>
      ))}
    </div>
  );
}
