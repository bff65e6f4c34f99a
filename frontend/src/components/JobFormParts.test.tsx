import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import type { JobSubmit } from "../lib/useJobSubmit";
import { ErrorList, FieldErrorNote, StartBar } from "./JobFormParts";

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
