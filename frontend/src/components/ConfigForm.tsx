// The grouped form over every field of the served config schema; advanced fields of a group
// are folded under "More".
import { readField, type Config, type ConfigField as Field, type FieldGroup } from "../lib/configForm";
import { ConfigField } from "./ConfigField";

interface Props {
  groups: FieldGroup[];
  config: Config;
  errors: Record<string, string[]>;
  onField: (field: Field, value: unknown) => void;
}

export function ConfigForm({ groups, config, errors, onField }: Props) {
  const render = (f: Field) => <ConfigField key={f.path} field={f} value={readField(config, f)} errors={errors[f.path]} onChange={(v) => onField(f, v)} />;
  return (
    <div className="config-groups">
      {groups.map((g) => (
        <fieldset key={g.id} className="card config-group">
          <legend>{g.title}</legend>
          <div className="field-grid">{g.fields.map(render)}</div>
          {g.advanced.length > 0 && (
            // open when one of its fields has an error, so the message is seen
            <details className="advanced" open={g.advanced.some((f) => errors[f.path]) || undefined}>
              <summary>More {g.title.toLowerCase()} settings ({g.advanced.length})</summary>
              <div className="field-grid">{g.advanced.map(render)}</div>
            </details>
          )}
        </fieldset>
      ))}
    </div>
  );
}
