// One config field as the server's schema describes it: label (with unit), an input by widget
// type, the description, and the messages (client or server) that belong to it, linked with
// aria-describedby so screen readers read them.
import { useEffect, useState } from "react";
import { fieldId, type ConfigField as Field } from "../lib/configForm";
import { emptyMeaning, fromInput, toInput } from "../lib/widgets";

interface Props {
  field: Field;
  value: unknown;
  errors?: string[];
  onChange: (value: unknown) => void;
}

export function ConfigField({ field, value, errors, onChange }: Props) {
  const id = fieldId(field.path);
  const widget = field.widget;
  const nullable = field.nullable || field.parent_nullable;
  const [text, setText] = useState(() => toInput(widget, value));
  const [localError, setLocalError] = useState<string | null>(null);

  // Follow outside changes (preset, JSON editor) unless the text already means the same value.
  useEffect(() => {
    const parsed = fromInput(widget, text, nullable);
    if (!parsed.ok || JSON.stringify(parsed.value) !== JSON.stringify(value ?? null)) {
      setText(toInput(widget, value));
      setLocalError(null);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [JSON.stringify(value)]);

  const msgs = [...(localError ? [localError] : []), ...(errors ?? [])];
  const describedBy = [`${id}-help`, msgs.length ? `${id}-err` : ""].filter(Boolean).join(" ");
  const invalid = msgs.length > 0;
  const hint = emptyMeaning(widget) ?? (nullable && widget !== "bool" ? "empty = off / default" : null);

  let input;
  if (widget === "bool") {
    input = <input id={id} type="checkbox" checked={!!value} aria-invalid={invalid} aria-describedby={describedBy} onChange={(e) => onChange(e.target.checked)} />;
  } else if (widget === "enum") {
    input = (
      <select id={id} value={value == null ? "" : String(value)} aria-invalid={invalid} aria-describedby={describedBy} onChange={(e) => onChange(e.target.value === "" ? null : e.target.value)}>
        {(nullable || value == null) && <option value="">—</option>}
        {(field.options ?? []).map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    );
  } else {
    const numeric = widget === "int" || widget === "float" || widget.startsWith("optional_");
    input = (
      <input
        id={id}
        type="text"
        inputMode={numeric ? "decimal" : undefined}
        value={text}
        placeholder={nullable ? "—" : undefined}
        aria-invalid={invalid}
        aria-describedby={describedBy}
        spellCheck={false}
        onChange={(e) => {
          setText(e.target.value);
          const p = fromInput(widget, e.target.value, nullable);
          if (p.ok) {
            setLocalError(null);
            onChange(p.value);
          } else setLocalError(p.error);
        }}
      />
    );
  }

  return (
    <div className={`field field-${widget}${invalid ? " has-error" : ""}`} data-path={field.path}>
      <label htmlFor={id}>
        {field.label}
        {field.unit ? ` (${field.unit})` : ""}
      </label>
      {input}
      <code className="field-key">{field.path}</code>
      <div id={`${id}-help`} className="field-help">
        {field.description}
        {hint ? ` (${hint})` : ""}
      </div>
      {msgs.length > 0 && (
        <div id={`${id}-err`} className="field-error" role="alert">
          {msgs.join("; ")}
        </div>
      )}
    </div>
  );
}
