// A labelled dataset's pairs: the classes found (with their overlay colour) and voxels per
// class over all labels, then one row per case; "View" opens the image with its label on top.
import type { LabelledOut, LabelledPairOut } from "../api/schema.gen";
import { classCss } from "../lib/labelColors";

function count(n: number): string {
  return n.toLocaleString("en-US");
}

export function LabelledPairs({ data, selected, onView }: { data: LabelledOut; selected: LabelledPairOut | null; onView: (p: LabelledPairOut) => void }) {
  return (
    <section className="card scroll" aria-label="Labelled pairs">
      <h2>
        {data.pairs.length} labelled {data.pairs.length === 1 ? "pair" : "pairs"}
        {data.root && <span className="muted small"> in {data.root}/</span>}
      </h2>
      <table className="table compact" aria-label="Classes">
        <thead>
          <tr>
            <th>Class</th>
            <th>Voxels</th>
          </tr>
        </thead>
        <tbody>
          {data.classes.map((k) => (
            <tr key={k}>
              <td>
                {k !== 0 && <span className="swatch" style={{ background: classCss(k) }} aria-hidden="true" />}
                {k === 0 ? "0 (background)" : k}
              </td>
              <td>{count(data.voxels_per_class[String(k)] ?? 0)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <table className="table" aria-label="Pairs">
        <thead>
          <tr>
            <th>Case</th>
            <th>Image</th>
            <th>Label</th>
            <th>Voxels per class</th>
            <th aria-label="Actions" />
          </tr>
        </thead>
        <tbody>
          {data.pairs.map((p) => (
            <tr key={p.label.id} className={selected?.label.id === p.label.id ? "selected" : ""}>
              <td>{p.case}</td>
              <td className="path">{p.image?.path ?? <em className="muted">missing</em>}</td>
              <td className="path">{p.label.path}</td>
              <td>
                {Object.entries(p.voxels_per_class)
                  .map(([k, n]) => `${k}: ${count(n)}`)
                  .join(" · ")}
              </td>
              <td className="actions">
                <button type="button" className="small" aria-label={`View ${p.case} with its label`} disabled={!p.image} onClick={() => onView(p)}>
                  View
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
