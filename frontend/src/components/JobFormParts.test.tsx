import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import type { JobSubmit } from "../lib/useJobSubmit";
import { ErrorList, FieldErrorNote, GpusField, StartBar } from "./JobFormParts";

const submit = (s: Partial<JobSubmit>): JobSubmit => ({
  busy: false, refused: [], error: null, fail: () => undefined, forgetRefusal: () => undefined, start: async () => undefined, ...s,
});

describe("the New-job forms' shared parts", () => {
  it("a job field's messages show as one alert, and nothing when it has none", () => {
    expect(renderToStaticMarkup(<FieldErrorNote messages={["too many", "not a number"]} />)).toBe('<span class="field-error" role="alert">too many; not a number</span>');
    expect(renderToStaticMarkup(<FieldErrorNote messages={undefined} />)).toBe("");
    expect(renderToStaticMarkup(<FieldErrorNote messages={[]} />)).toBe("");
  });

  it("errors no field holds are listed, headed by who found them", () => {
    const errors = [{ path: "modle", message: "unknown key" }, { path: "", message: "the queue is paused" }];
    const refused = renderToStaticMarkup(<ErrorList errors={errors} refused subject="job" />);
    expect(refused).toContain("The server refused this job:");
    expect(refused).toContain("<li>modle: unknown key</li><li>the queue is paused</li>");
    expect(renderToStaticMarkup(<ErrorList errors={errors} refused={false} subject="job" />)).toContain("This config has problems:");
    expect(renderToStaticMarkup(<ErrorList errors={[]} refused subject="job" />)).toBe("");
  });

  it("the GPUs field offers at most the largest live worker, lists them, and shows its 422 at the field", () => {
    const workers = [
      { name: "a", device: "cpu", gpus: 2 },
      { name: "b", device: "cuda:0 (GPU 0)", gpus: 1 },
    ];
    const html = renderToStaticMarkup(<GpusField value={2} onChange={() => undefined} workers={workers} messages={["gpus 3 but the largest live worker on queue cpu has 2"]} />);
    expect(html).toMatch(/aria-label="GPUs" min="1" max="2"/);
    expect(html).toContain('aria-invalid="true"');
    expect(html).toContain("largest worker: 2 (a: 2 processes, b: 1 GPU)");
    expect(html).toContain('<span class="field-error" role="alert">gpus 3 but the largest live worker on queue cpu has 2</span>');
    const none = renderToStaticMarkup(<GpusField value={1} onChange={() => undefined} workers={[]} messages={undefined} />);
    expect(none).toMatch(/max="1"/);
    expect(none).toContain('aria-invalid="false"');
    expect(none).not.toContain("field-error");
  });

  it("Start is disabled and says so while starting, and the start's failure wins over the check's", () => {
    const busy = renderToStaticMarkup(<StartBar submit={submit({ busy: true })} checkFailure={null} ready label="Start training" />);
    expect(busy).toMatch(/<button type="submit" class="primary" disabled="">Starting…<\/button>/);
    const idle = renderToStaticMarkup(<StartBar submit={submit({})} checkFailure={new Error("check down")} ready label="Start training" />);
    expect(idle).toMatch(/<button type="submit" class="primary">Start training<\/button>/);
    expect(idle).toContain("<strong>Config check: </strong>check down");
    const failed = renderToStaticMarkup(<StartBar submit={submit({ error: new Error("no worker") })} checkFailure={new Error("check down")} ready label="Start training" />);
    expect(failed).toContain("<strong>Could not start the job: </strong>no worker");
    expect(failed).not.toContain("check down");
    expect(renderToStaticMarkup(<StartBar submit={submit({})} checkFailure={null} ready={false} label="Start training" />)).toContain('disabled=""');
  });
});
