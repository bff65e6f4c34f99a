"""Every preprocessing rule on real files: orientation, aspect, intensity, NaN, channels, kinds."""
import numpy as np
import pytest

from data_fixtures import LPS, NIBABEL_DATA, affine_for, write_nifti, write_png
from ddpm.data import DataError, DataWarning, PreprocessSettings, preprocess_file
from ddpm.data.preprocess import resize_plan

# voxel axes run P, S, L (a permuted and flipped orientation)
PSL = np.array([[0, 0, -1, 0], [-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1.0]])


def s3(size, **kw):
    return PreprocessSettings(dims=3, image_size=size, **kw)


def marker_at(out):
    return tuple(int(i) for i in np.unravel_index(np.argmax(out[0]), out[0].shape))


def test_lps_marker_lands_where_ras_says(tmp_path):
    data = np.zeros((8, 8, 8), np.int16)
    data[1, 2, 3] = 500
    path = write_nifti(tmp_path / "lps.nii.gz", data, affine_for(orient=LPS))
    out = preprocess_file(path, s3(8, clip_percentiles=None))
    # L->R and P->A reverse the first two axes; S stays
    assert marker_at(out) == (6, 5, 3)
    assert out[0, 6, 5, 3] == 1.0 and out.sum() == 1.0


def test_permuted_orientation_marker_and_spacing_follow_the_axes(tmp_path):
    data = np.zeros((6, 6, 6), np.float32)
    data[1, 2, 3] = 1.0
    path = write_nifti(tmp_path / "psl.nii", data, affine_for(orient=PSL))
    out = preprocess_file(path, s3(6, clip_percentiles=None))
    # R comes from reversed k, A from reversed i, S from j
    assert marker_at(out) == (5 - 3, 5 - 1, 2)

    # anisotropic spacing (1, 2, 3) on voxel axes (P, S, L) is (3, 1, 2) mm along R, A, S:
    # a 4^3 volume spans 12 x 4 x 8 mm, so at 6^3 it fills 6 x 2 x 4 voxels, centred
    cube = write_nifti(tmp_path / "aniso.nii", np.full((4, 4, 4), 7, np.int16),
                       affine_for((1.0, 2.0, 3.0), PSL))
    out = preprocess_file(cube, s3(6, window=(0.0, 14.0)))
    filled = np.argwhere(out[0] > 0)
    assert tuple(filled.min(0)) == (0, 2, 1) and tuple(filled.max(0)) == (5, 3, 4)
    np.testing.assert_allclose(out[0, :, 2:4, 1:5], 0.5)


def test_aspect_kept_with_padding_on_the_short_axes(tmp_path):
    # 8 voxels at 2 mm along x vs 8 at 1 mm: a 2:1 physical extent
    path = write_nifti(tmp_path / "v.nii.gz", np.full((8, 8, 8), 100, np.int16),
                       affine_for((2.0, 1.0, 1.0)))
    out = preprocess_file(path, s3(8, window=(0.0, 200.0)))
    assert out.shape == (1, 8, 8, 8)
    np.testing.assert_allclose(out[0, :, 2:6, 2:6], 0.5)
    assert not out[0, :, :2].any() and not out[0, :, 6:].any()
    assert not out[0, :, :, :2].any() and not out[0, :, :, 6:].any()
    stretched = preprocess_file(path, s3(8, window=(0.0, 200.0), keep_aspect=False))
    np.testing.assert_allclose(stretched, 0.5)
    assert resize_plan((8, 8, 8), (2.0, 1.0, 1.0), 8, True) == ((8, 4, 4), ((0, 0), (2, 2), (2, 2)))


def test_resize_down_averages_and_up_interpolates(tmp_path):
    checker = (np.indices((16, 16, 16)).sum(0) % 2).astype(np.float32)
    out = preprocess_file(write_nifti(tmp_path / "c.nii", checker), s3(8, clip_percentiles=None))
    np.testing.assert_allclose(out, 0.5, atol=1e-6)  # area averaging: no aliasing
    ramp = np.broadcast_to(np.arange(4, dtype=np.float32)[:, None, None], (4, 16, 8)).copy()
    out = preprocess_file(write_nifti(tmp_path / "r.nii", ramp), s3(8, clip_percentiles=None,
                                                                     keep_aspect=False))
    assert out.shape == (1, 8, 8, 8) and out.min() >= 0 and out.max() <= 1
    assert np.all(np.diff(out[0, :, 0, 0]) >= 0)  # still a monotone ramp along x


def test_percentile_clip_and_min_max(tmp_path):
    data = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    data[0, 0, 0] = 1e6  # one outlier
    path = write_nifti(tmp_path / "p.nii.gz", data)
    out = preprocess_file(path, s3(10, clip_percentiles=(1.0, 99.0)))
    lo, hi = np.percentile(data, [1.0, 99.0])
    np.testing.assert_allclose(out[0], (np.clip(data, lo, hi) - lo) / (hi - lo), atol=1e-6)
    assert (out == 1.0).sum() > 1  # the top percent saturates, not just the outlier
    minmax = preprocess_file(path, s3(10, clip_percentiles=None))
    assert minmax[0, 0, 0, 0] == 1.0 and minmax[0, 9, 9, 9] < 0.001  # the outlier squashes the rest


def test_fixed_window_maps_hu_to_unit_range(tmp_path):
    hu = np.array([-2000, -1000, -300, 400, 3000], np.int16)
    data = np.broadcast_to(hu[:, None, None], (5, 5, 5)).copy()
    out = preprocess_file(write_nifti(tmp_path / "ct.nii.gz", data), s3(5, window=(-1000, 400)))
    np.testing.assert_allclose(out[0, :, 2, 2], [0, 0, 0.5, 1, 1])


def test_nan_and_inf_voxels_become_the_minimum_with_a_warning(tmp_path):
    data = np.linspace(10, 20, 64, dtype=np.float32).reshape(4, 4, 4)
    data[0, 0, 0], data[1, 1, 1], data[2, 2, 2] = np.nan, np.inf, -np.inf
    path = write_nifti(tmp_path / "holes.nii.gz", data)
    with pytest.warns(DataWarning, match=r"holes.nii.gz: 3 NaN/Inf voxel\(s\) set to the minimum finite value"):
        out = preprocess_file(path, s3(4, clip_percentiles=None))
    assert np.isfinite(out).all()
    assert out[0, 0, 0, 0] == out[0, 1, 1, 1] == out[0, 2, 2, 2] == 0.0
    # nibabel's own file with NaNs (big-endian float32, 3 slices)
    with pytest.warns(DataWarning, match="resampled_anat_moved.nii: 153 NaN"):
        out = preprocess_file(NIBABEL_DATA / "resampled_anat_moved.nii", s3(16))
    assert np.isfinite(out).all() and out.shape == (1, 16, 16, 16)


def test_4d_becomes_channels_only_when_count_matches(tmp_path):
    out = preprocess_file(NIBABEL_DATA / "example4d.nii.gz", s3(8, channels=2))
    assert out.shape == (2, 8, 8, 8) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(DataError, match=r"example4d.nii.gz: 4D shape \(128, 96, 24, 2\) has 2 volumes "
                                        r".*image_channels is 1"):
        preprocess_file(NIBABEL_DATA / "example4d.nii.gz", s3(8))
    # channels are scaled independently (modalities have unrelated ranges)
    base = np.random.default_rng(0).uniform(0, 1, (6, 6, 6)).astype(np.float32)
    two = np.stack([base, base * 1000 + 50], axis=-1)
    out = preprocess_file(write_nifti(tmp_path / "t1t2.nii.gz", two), s3(6, channels=2,
                                                                         clip_percentiles=None))
    np.testing.assert_allclose(out[0], out[1], atol=1e-5)
    out = preprocess_file(NIBABEL_DATA / "example_nifti2.nii.gz", s3(8, channels=2))
    assert out.shape == (2, 8, 8, 8)


def test_2d_file_in_3d_dataset_and_3d_file_in_2d_dataset_are_errors(tmp_path):
    png = write_png(tmp_path / "slice.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"slice.png: is a 2D image .* dataset 'volume3d' needs 3D"):
        preprocess_file(png, s3(8))
    vol = write_nifti(tmp_path / "vol.nii.gz", np.zeros((8, 8, 8), np.float32))
    with pytest.raises(DataError, match=r"vol.nii.gz: is a 3D volume .* dataset 'image2d' needs 2D"):
        preprocess_file(vol, PreprocessSettings(dims=2, image_size=8))
    np.save(tmp_path / "vol.npy", np.zeros((4, 4, 4)))
    with pytest.raises(DataError, match="vol.npy: is a 3D volume"):
        preprocess_file(tmp_path / "vol.npy", PreprocessSettings(dims=2, image_size=8))
    # a single-slice NIfTI (x, y, 1) is a 2D image
    flat = write_nifti(tmp_path / "flat.nii", np.ones((8, 8, 1), np.float32))
    assert preprocess_file(flat, PreprocessSettings(dims=2, image_size=8)).shape == (1, 8, 8)


def test_2d_images_grey_from_rgb_and_aspect(tmp_path):
    rgb = np.zeros((4, 8, 3), np.uint8)
    rgb[..., 1] = 255  # pure green: luminance 0.587 of the max
    rgb[0, 0] = 0
    out = preprocess_file(write_png(tmp_path / "g.png", rgb),
                          PreprocessSettings(dims=2, image_size=8, clip_percentiles=None))
    assert out.shape == (1, 8, 8)
    # 4x8 pixels: rows resized to 4 and padded by 2 above and below
    assert not out[0, :2].any() and not out[0, 6:].any()
    assert out[0, 2:6].mean() > 0.9
    with pytest.raises(DataError, match=r"g.png: has 3 channel\(s\)"):
        preprocess_file(tmp_path / "g.png", PreprocessSettings(dims=2, image_size=8, channels=2))
    g16 = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    out = preprocess_file(write_png(tmp_path / "g16.png", g16),
                          PreprocessSettings(dims=2, image_size=8, clip_percentiles=None))
    np.testing.assert_allclose(out[0], g16 / g16.max(), atol=1e-6)
