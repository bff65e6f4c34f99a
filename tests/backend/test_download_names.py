"""Issue 13 item 10: downloads are named after what they are (dataset, job, step, index)."""
from __future__ import annotations

from upload_files import nifti_bytes, png_bytes

from backend import reporting
from backend.download_names import slug
from backend.models import Job


def test_sample_downloads_name_dataset_job_step_and_index(client, app, make_dataset):
    ds = make_dataset({"a.nii.gz": nifti_bytes()}, name="My brains (T1)!")
    storage = app.state.storage
    with app.state.session_factory() as s:
        train = Job(kind="train", status="succeeded", dataset_id=ds, config={})
        s.add(train)
        s.flush()
        sampler = Job(kind="sample", status="succeeded", source_job_id=train.id, config={})
        s.add(sampler)
        s.commit()
        ids = train.id, sampler.id
    for jid in ids:
        sdir = storage.samples_dir(jid)
        sdir.mkdir(parents=True)
        (sdir / "s.nii.gz").write_bytes(nifti_bytes())
        (sdir / "s.png").write_bytes(png_bytes())
    with app.state.session_factory() as s:
        during = reporting.add_sample(s, storage, ids[0], 3, [8, 9, 10], storage.samples_dir(ids[0]) / "s.nii.gz",
                                      storage.samples_dir(ids[0]) / "s.png", step=400)
        after = reporting.add_sample(s, storage, ids[1], 0, [8, 9, 10], storage.samples_dir(ids[1]) / "s.nii.gz",
                                     storage.samples_dir(ids[1]) / "s.png")
    name = "My-brains-T1"
    r = client.get(f"/api/samples/{during.id}/volume.nii.gz")
    assert f'filename="{name}-job{ids[0]}-step400-sample3.nii.gz"' in r.headers["content-disposition"]
    r = client.get(f"/api/samples/{after.id}/preview.png")  # a sample job: named after its model's dataset
    assert f'filename="{name}-job{ids[1]}-sample0.png"' in r.headers["content-disposition"]
    client.delete(f"/api/datasets/{ds}")  # the dataset gone: still a sensible name
    r = client.get(f"/api/samples/{after.id}/volume.nii.gz")
    assert f'filename="ddpm-job{ids[1]}-sample0.nii.gz"' in r.headers["content-disposition"]


def test_slug_keeps_file_name_characters_only():
    assert slug("brains_v2.1") == "brains_v2.1"
    assert slug("../../etc/passwd") == "etc-passwd"
    assert slug("Gehirn Ä") == "Gehirn" and slug("!!!") == ""
