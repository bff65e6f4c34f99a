// One config field: label, input by kind, help text, and the messages (client or server)
// that belong to it, linked with aria-describedby so screen readers read them.
import { useEffect, useState } from "react";
import { fieldId, fromInput, toInput, type FieldSpec } from "../lib/configFields";

interface Props {
  spec: FieldSpec;
  value: unknown;
  errors?: string[];
  onChange: (value: unknown) => void;
}

export function ConfigField({ spec, value, errors, onChange }: Props) {
  const id = fieldId(spec.path);
  const [text, setText] = useState(() => toInput(spec.kind, value));
  const [localError, setLocalError] = useState<string | null>(null);

  // Follow outside changes (preset, JSON editor) unless the text already means the same value.
  useEffect(() => {
    const parsed = fromInput(spec.kind, text);
    if (!parsed.ok || JSON.stringify(parsed.value) !== JSON.stringify(value ?? null)) {
      setText(toInput(spec.kind, value));
      setLocalError(null);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [JSON.stringify(value)]);

  const msgs = [...(localError ? [localError] : []), ...(errors ?? [])];
  const describedBy = [spec.help ? `${id}-help` : "", msgs.length ? `${id}-err` : ""].filter(Boolean).join(" ") || undefined;
  const invalid = msgs.length > 0;

  let input;
  if (spec.kind === "bool") {
    input = (
      <input id={id} type="checkbox" checked={!!value} aria-invalid={invalid} aria-describedby={describedBy} onChange={(e) => onChange(e.target.checked)} />
    );
  } else if (spec.kind === "enum") {
    input = (
      <select id={id} value={String(value ?? "")} aria-invalid={invalid} aria-describedby={describedBy} onChange={(e) => onChange(e.target.value)}>
        {spec.options?.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    );
  } else {
    const numeric = spec.kind === "int" || spec.kind === "float";
    input = (
      <input
        id={id}
        type="text"
        inputMode={numeric ? "decimal" : undefined}
        value={text}
        aria-invalid={invalid}
        aria-describedby={describedBy}
        spellCheck={false}
        onChange={(e) => {
          setText(e.target.value);
          const p = fromInput(spec.kind, e.target.value);
          if (p.ok) {
            setLocalError(null);
            onChange(p.value);
          } else setLocalError(p.error);
        }}
      />
    );
  }

  return (
    <div className={`field field-${spec.kind}${invalid ? " has-error" : ""}`}>
      <label htmlFor={id}>{spec.label}</label>
      {input}
      <code className="field-key">{spec.path}</code>
      {spec.help && (
        <div id={`${id}-help`} className="field-help">
          {spec.help}
        </div>
      )}
      {msgs.length > 0 && (
        <div id={`${id}-err`} className="field-error" role="alert">
          {msgs.join("; ")}
        </div>
      )}
    </div>
  );
}
