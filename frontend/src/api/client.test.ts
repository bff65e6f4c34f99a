import { describe, expect, it } from "vitest";
import { attachmentName, routeUrl } from "./client";

describe("attachmentName", () => {
  it("reads the name the server gives a download", () => {
    expect(attachmentName('attachment; filename="train3-sample0.nii.gz"')).toBe("train3-sample0.nii.gz");
    expect(attachmentName("attachment; filename=model.safetensors")).toBe("model.safetensors");
    // Starlette sends non-ASCII names as filename*=utf-8''...
    expect(attachmentName("attachment; filename*=utf-8''vol%204%C3%A9.nii.gz")).toBe("vol 4é.nii.gz");
    expect(attachmentName(null)).toBeNull();
    expect(attachmentName("inline")).toBeNull();
  });
});

describe("routeUrl", () => {
  it("fills a generated path template, each segment encoded, folders kept", () => {
    expect(routeUrl("/api/jobs/{job_id}/log", { job_id: 3 })).toBe("/api/jobs/3/log");
    expect(routeUrl("/api/datasets/{dataset_id}/files/{path}", { dataset_id: 7, path: "my scans/a#1.nii" })).toBe("/api/datasets/7/files/my%20scans/a%231.nii");
    expect(() => routeUrl("/api/jobs/{job_id}/log", {})).toThrow(/needs job_id/);
  });
});
