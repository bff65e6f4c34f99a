// The grouped form over every config field.
import type { TrainConfig } from "../lib/configTypes";
import { FIELDS, GROUPS } from "../lib/configFields";
import { getPath } from "../lib/objpath";
import { ConfigField } from "./ConfigField";

interface Props {
  config: TrainConfig;
  errors: Record<string, string[]>;
  onField: (path: string, value: unknown) => void;
}

export function ConfigForm({ config, errors, onField }: Props) {
  return (
    <div className="config-groups">
      {GROUPS.map((g) => (
        <fieldset key={g.id} className="card config-group">
          <legend>{g.title}</legend>
          <div className="field-grid">
            {FIELDS.filter((f) => f.group === g.id).map((f) => (
              <ConfigField key={f.path} spec={f} value={getPath(config, f.path)} errors={errors[f.path]} onChange={(v) => onField(f.path, v)} />
            ))}
          </div>
        </fieldset>
      ))}
    </div>
  );
}
