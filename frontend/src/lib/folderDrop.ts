// Collect files from a dropped folder (or from <input webkitdirectory>) with their path
// inside the folder, the way webkitRelativePath names them ("scans/sub/a.nii.gz").

export interface PickedFile {
  path: string;
  file: File;
}

export function fromFileList(list: FileList | File[]): PickedFile[] {
  return Array.from(list).map((f) => ({ path: f.webkitRelativePath || f.name, file: f }));
}

function readAll(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  // readEntries returns at most ~100 entries per call: call until it returns none.
  return new Promise((resolve, reject) => {
    const out: FileSystemEntry[] = [];
    const next = () =>
      reader.readEntries((batch) => {
        if (batch.length === 0) resolve(out);
        else {
          out.push(...batch);
          next();
        }
      }, reject);
    next();
  });
}

async function walk(entry: FileSystemEntry, out: PickedFile[]): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej));
    out.push({ path: entry.fullPath.replace(/^\/+/, ""), file });
  } else if (entry.isDirectory) {
    const children = await readAll((entry as FileSystemDirectoryEntry).createReader());
    for (const c of children) await walk(c, out);
  }
}

/** Files of everything dropped (folders walked recursively). */
export async function fromDataTransfer(dt: DataTransfer): Promise<PickedFile[]> {
  const entries: FileSystemEntry[] = [];
  for (const item of Array.from(dt.items)) {
    const e = item.kind === "file" ? item.webkitGetAsEntry?.() : null;
    if (e) entries.push(e);
  }
  if (entries.length === 0) return fromFileList(dt.files);
  const out: PickedFile[] = [];
  for (const e of entries) await walk(e, out);
  return out;
}

/** Folder name to prefill the dataset name with. */
export function topFolder(files: PickedFile[]): string {
  const first = files[0]?.path ?? "";
  return first.includes("/") ? first.slice(0, first.indexOf("/")) : "";
}
