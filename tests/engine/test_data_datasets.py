"""Datasets: file search, the cache, read_volume overrides, flips, the split, build_datasets."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import ddpm.data.datasets as datasets_mod
from data_fixtures import affine_for, bump_mtime, make_folder, ramp_volume, write_nifti, write_png
from ddpm.config import load_config
from ddpm.data import (DataError, Image2DDiffusionDataset, Volume3DDiffusionDataset, build_datasets,
                       find_files, split_files)


@pytest.fixture
def preprocess_calls(monkeypatch):
    """Counts real preprocessing runs (the real function still does the work)."""
    calls = []
    real = datasets_mod.preprocess_file

    def counting(path, settings):
        calls.append((str(path), settings.image_size))
        return real(path, settings)

    monkeypatch.setattr(datasets_mod, "preprocess_file", counting)
    return calls


def test_find_files_seed_layout_recursive_sorted_hidden_and_cache_skipped(tmp_path):
    make_folder(tmp_path / "brain" / "volumes", 2)
    make_folder(tmp_path / "abdomen" / "volumes", 1, ext=".npy")
    make_folder(tmp_path / ".trash", 1)
    (tmp_path / "brain" / "volumes" / ".hidden.nii.gz").write_bytes(b"x")
    (tmp_path / ".ddpm_cache").mkdir()
    np.save(tmp_path / ".ddpm_cache" / "abc.npy", np.zeros(3))
    (tmp_path / "mycache").mkdir()  # a cache folder configured inside the dataset
    np.save(tmp_path / "mycache" / "x.npy", np.zeros(3))
    (tmp_path / "README.txt").write_text("notes")
    found = [p.relative_to(tmp_path).as_posix() for p in find_files(tmp_path, exclude=[tmp_path / "mycache"])]
    assert found == ["abdomen/volumes/vol_000.npy", "brain/volumes/vol_000.nii.gz",
                     "brain/volumes/vol_001.nii.gz"]


def test_no_files_and_missing_folder_are_clear_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=rf"no supported files in {tmp_path} .*\.nii, \.nii\.gz, \.npy, \.png"):
        Volume3DDiffusionDataset(tmp_path, 8)
    with pytest.raises(DataError, match="dataset path .*nowhere does not exist"):
        Volume3DDiffusionDataset(tmp_path / "nowhere", 8)


def test_bad_files_fail_at_construction_naming_them(tmp_path):
    make_folder(tmp_path, 2)
    write_png(tmp_path / "preview.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "broken.nii").write_bytes(b"garbage")
    with pytest.raises(DataError) as err:
        Volume3DDiffusionDataset(tmp_path, 8, cache=False)
    msg = str(err.value)
    assert "2 of 4 files" in msg and "broken.nii: cannot read" in msg and "preview.png: is a 2D image" in msg
    assert "\n" not in msg
    (tmp_path / "broken.nii").unlink()
    with pytest.raises(DataError, match=r"^\S*preview.png: is a 2D image"):
        Volume3DDiffusionDataset(tmp_path, 8, cache=False)


def test_items_are_float32_in_minus_one_one(tmp_path):
    make_folder(tmp_path, 1)
    write_nifti(tmp_path / "vol_001.nii.gz", ramp_volume((6, 10, 8)))
    ds = Volume3DDiffusionDataset(tmp_path, 8, cache=False)
    x = ds[1]
    assert x.dtype == torch.float32 and x.shape == (1, 8, 8, 8)
    assert x.min() == -1.0 and x.max() <= 1.0 and x.max() > 0.8
    assert len(ds) == 2 and ds.files[0].name == "vol_000.nii.gz"


def test_cache_hit_reuses_the_preprocessed_volume_across_runs(tmp_path, preprocess_calls):
    make_folder(tmp_path, 2)
    first = Volume3DDiffusionDataset(tmp_path, 8)
    a = first[0]
    assert len(preprocess_calls) == 1
    entries = sorted((tmp_path / ".ddpm_cache").glob("*.npy"))
    assert len(entries) == 1 and (tmp_path / ".ddpm_cache" / "hashes.json").exists()
    mtime = entries[0].stat().st_mtime_ns
    second = Volume3DDiffusionDataset(tmp_path, 8)  # a new run on the same folder
    b = second[0]
    assert len(preprocess_calls) == 1 and torch.equal(a, b)
    assert entries[0].stat().st_mtime_ns == mtime
    second[0]
    assert len(preprocess_calls) == 1


def test_cache_invalidated_by_content_or_settings_change(tmp_path, preprocess_calls):
    path = write_nifti(tmp_path / "v.nii.gz", np.arange(512, dtype=np.float32).reshape(8, 8, 8))
    before = Volume3DDiffusionDataset(tmp_path, 8)[0]
    Volume3DDiffusionDataset(tmp_path, 4)[0]  # other size: another entry
    Volume3DDiffusionDataset(tmp_path, 8, clip_percentiles=None)[0]
    Volume3DDiffusionDataset(tmp_path, 8, window=(0, 100))[0]
    assert len(preprocess_calls) == 4
    Volume3DDiffusionDataset(tmp_path, 8)[0]
    assert len(preprocess_calls) == 4
    write_nifti(path, np.arange(512, dtype=np.float32)[::-1].reshape(8, 8, 8).copy())
    bump_mtime(path)
    after = Volume3DDiffusionDataset(tmp_path, 8)[0]
    assert len(preprocess_calls) == 5
    assert torch.allclose(after, before.flip(1, 2, 3), atol=1e-5)


def test_corrupt_cache_entry_is_recomputed_and_cache_false_writes_nothing(tmp_path, preprocess_calls):
    make_folder(tmp_path, 1)
    ds = Volume3DDiffusionDataset(tmp_path, 8)
    good = ds[0]
    entry = next((tmp_path / ".ddpm_cache").glob("*.npy"))
    entry.write_bytes(entry.read_bytes()[:100])  # as if a crash had left half a file
    assert torch.equal(Volume3DDiffusionDataset(tmp_path, 8)[0], good)
    assert len(preprocess_calls) == 2
    other = tmp_path / "other"
    make_folder(other, 1)
    nocache = Volume3DDiffusionDataset(other, 8, cache=False)
    nocache[0], nocache[0]
    assert len(preprocess_calls) == 4 and not (other / ".ddpm_cache").exists()


def test_cache_dir_is_configurable(tmp_path, monkeypatch):
    make_folder(tmp_path / "data", 1)
    Volume3DDiffusionDataset(tmp_path / "data", 8, cache_dir=tmp_path / "c1")[0]
    assert len(list((tmp_path / "c1").glob("*.npy"))) == 1
    monkeypatch.setenv("DDPM_CACHE_DIR", str(tmp_path / "c2"))
    Volume3DDiffusionDataset(tmp_path / "data", 8)[0]
    assert len(list((tmp_path / "c2").glob("*.npy"))) == 1
    assert not (tmp_path / "data" / ".ddpm_cache").exists()


def test_unwritable_cache_folder_falls_back_to_the_user_cache(tmp_path, monkeypatch, caplog):
    make_folder(tmp_path / "data", 1)
    (tmp_path / "data" / ".ddpm_cache").write_text("a file where the folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home_cache"))
    ds = Volume3DDiffusionDataset(tmp_path / "data", 8)
    ds[0]
    assert len(list((tmp_path / "home_cache" / "ddpm-studio" / "preprocessed").glob("*.npy"))) == 1
    assert "instead" in caplog.text
    # an explicit folder that cannot be used means no cache, not somewhere else
    explicit = Volume3DDiffusionDataset(tmp_path / "data", 8, cache_dir=tmp_path / "data" / ".ddpm_cache")
    assert explicit[0].shape == (1, 8, 8, 8) and not explicit._cache.enabled


def test_read_volume_override_is_used_and_never_bypassed_by_the_cache(tmp_path, preprocess_calls):
    make_folder(tmp_path, 2)
    Volume3DDiffusionDataset(tmp_path, 8)[0]  # a cache entry exists for this file now

    class Custom(Volume3DDiffusionDataset):
        def read_volume(self, volume_path):
            self.seen = getattr(self, "seen", []) + [volume_path]
            return torch.full((1, 8, 8, 8), 0.25)

    ds = Custom(tmp_path, 8)
    x = ds[0]
    assert torch.allclose(x, torch.full((1, 8, 8, 8), -0.5)) and ds.seen == [ds.files[0]]
    assert len(preprocess_calls) == 1

    class Wrong(Volume3DDiffusionDataset):
        def read_volume(self, volume_path):
            return torch.zeros(8, 8, 8)

    with pytest.raises(DataError, match=r"vol_000.nii.gz: the reader returned \(8, 8, 8\); expected a tensor "
                                        r"\(C, D, H, W\) = \(1, 8, 8, 8\)"):
        Wrong(tmp_path, 8)[0]

    # files our reader cannot use are the custom reader's business; spacing comes from the rest
    np.save(tmp_path / "odd.npy", np.zeros((2, 2, 2, 2, 2)))
    write_nifti(tmp_path / "vol_002.nii.gz", np.zeros((8, 8, 8), np.float32), affine_for((2.0, 2.0, 2.0)))
    custom = Custom(tmp_path, 8)
    assert len(custom) == 4 and custom.output_spacing == (1.0, 1.0, 1.0)
    assert Custom(tmp_path, 8, files=[tmp_path / "vol_002.nii.gz"]).output_spacing == (2.0, 2.0, 2.0)


def test_flips_in_train_only(tmp_path):
    data = np.zeros((8, 8, 8), np.float32)
    data[0, 1, 2] = 1.0
    write_nifti(tmp_path / "m.nii.gz", data)
    plain = Volume3DDiffusionDataset(tmp_path, 8, clip_percentiles=None)[0]
    torch.manual_seed(0)
    train = Volume3DDiffusionDataset(tmp_path, 8, clip_percentiles=None, flip=True, split="train")
    seen = {tuple(torch.nonzero(train[0] > 0)[0].tolist()) for _ in range(40)}
    # every axis flipped sometimes: the marker visits all 8 mirror positions
    assert seen == {(0, x, y, z) for x in (0, 7) for y in (1, 6) for z in (2, 5)}
    val = Volume3DDiffusionDataset(tmp_path, 8, clip_percentiles=None, flip=True, split="val")
    assert not val.flip and all(torch.equal(val[0], plain) for _ in range(10))


def test_split_deterministic_disjoint_and_small_cases(tmp_path):
    files = make_folder(tmp_path, 10, shape=(2, 2, 2), ext=".npy")
    train, val = split_files(files, 0.2, seed=0, root=tmp_path)
    assert len(val) == 2 and set(train).isdisjoint(val) and sorted(train + val) == files
    assert split_files(files, 0.2, seed=0, root=tmp_path) == (train, val)
    assert split_files(files, 0.2, seed=1, root=tmp_path)[1] != val
    assert len(split_files(files[:2], 0.1, seed=0)[1]) == 1
    assert split_files(files[:1], 0.5, seed=0) == (files[:1], files[:1])
    assert split_files(files[:3], 0.0, seed=0) == (files[:3], files[:3])


def test_output_spacing_from_median_physical_extent(tmp_path):
    for i, sx in enumerate((2.0, 2.0, 4.0)):
        write_nifti(tmp_path / f"v{i}.nii.gz", np.ones((8, 8, 8), np.float32), affine_for((sx, 1.0, 1.0)))
    assert Volume3DDiffusionDataset(tmp_path, 8, cache=False).output_spacing == (2.0, 2.0, 2.0)
    stretched = Volume3DDiffusionDataset(tmp_path, 8, cache=False, keep_aspect=False)
    assert stretched.output_spacing == (2.0, 1.0, 1.0)


def test_image2d_dataset(tmp_path):
    for i in range(3):
        write_png(tmp_path / "imgs" / f"{i}.png", np.full((12, 12), 40 * i + 1, np.uint8))
    ds = Image2DDiffusionDataset(tmp_path, 8, clip_percentiles=None)
    assert len(ds) == 3 and ds[0].shape == (1, 8, 8) and ds.output_spacing == (1.0, 1.0)


def test_build_datasets_from_the_seed_config_and_dataloader_workers(tmp_path):
    make_folder(tmp_path / "ds" / "volumes", 5, shape=(10, 8, 6))
    cfg = load_config({"is_3d": True, "seed": 3, "dataset": {
        "name": "volume3d", "path": str(tmp_path / "ds"), "image_size": 8, "batch_size": 2,
        "val_fraction": 0.2, "flip": True}})
    train, val = build_datasets(cfg)
    assert len(train) == 4 and len(val) == 1 and set(train.files).isdisjoint(val.files)
    assert train.flip and not val.flip and train.output_spacing == val.output_spacing == (1.25,) * 3
    again = build_datasets(cfg)
    assert again[1].files == val.files
    batches = list(DataLoader(train, batch_size=2, num_workers=2))
    assert [b.shape for b in batches] == [(2, 1, 8, 8, 8)] * 2
    assert len(list((tmp_path / "ds" / ".ddpm_cache").glob("*.npy"))) == 4

    class Custom(Volume3DDiffusionDataset):
        def read_volume(self, volume_path):
            return torch.zeros(1, 8, 8, 8)

    ctrain, _ = build_datasets(cfg, dataset_cls=Custom)
    assert isinstance(ctrain, Custom) and ctrain[0].min() == -1
