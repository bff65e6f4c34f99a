"""Reading real files: nibabel's own test data and files written here."""
import numpy as np
import nibabel as nib
import pytest
from PIL import Image

from data_fixtures import LPS, NIBABEL_DATA, affine_for, write_nifti, write_png
from ddpm.data import DataError, read_header, read_image_file
from ddpm.data.io import file_ext, to_ras


def test_file_ext_treats_nii_gz_as_one_extension():
    assert file_ext("a/b.NII.GZ") == ".nii.gz"
    assert file_ext("x.nii") == ".nii"
    assert file_ext("x.tar.gz") == ""


def test_shipped_big_endian_int16_reads_native_and_equals_nibabel():
    path = NIBABEL_DATA / "anatomical.nii"
    arr, affine, meta = read_image_file(path)
    assert meta["dtype"] == "int16 (big-endian)"
    assert arr.dtype == np.float32 and arr.dtype.byteorder in "=|<"
    np.testing.assert_array_equal(arr, nib.load(path).get_fdata())
    np.testing.assert_allclose(affine, nib.load(path).affine)
    assert meta["axcodes"] == ("L", "A", "S")


def test_shipped_nifti2_and_4d_files_report_channels():
    h2 = read_header(NIBABEL_DATA / "example_nifti2.nii.gz")
    assert h2.fmt == "nifti2" and h2.spatial_shape == (32, 20, 12) and h2.channels == 2
    h4 = read_header(NIBABEL_DATA / "example4d.nii.gz")
    assert h4.fmt == "nifti1" and h4.channels == 2
    assert h4.spacing == pytest.approx((2.0, 2.0, 2.2), abs=1e-5)


def test_scl_slope_and_inter_are_applied(tmp_path):
    raw = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    path = write_nifti(tmp_path / "scaled.nii", raw, slope_inter=(2.0, -100.0))
    arr, _, meta = read_image_file(path)
    np.testing.assert_allclose(arr, raw * 2.0 - 100.0)
    assert meta["header"].extra == {"scl_slope": 2.0, "scl_inter": -100.0}


def test_generated_big_endian_scaled_nifti_and_nifti2(tmp_path):
    raw = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    be = write_nifti(tmp_path / "be.nii", raw, big_endian=True, slope_inter=(0.5, 10.0))
    arr, _, meta = read_image_file(be)
    assert meta["dtype"] == "int16 (big-endian)"
    np.testing.assert_allclose(arr, raw * 0.5 + 10.0)
    n2 = write_nifti(tmp_path / "n2.nii.gz", raw.astype(np.float64), nifti2=True)
    arr2, _, meta2 = read_image_file(n2)
    assert meta2["format"] == "nifti2"
    np.testing.assert_array_equal(arr2, raw)


def test_big_endian_npy_becomes_native_float32(tmp_path):
    np.save(tmp_path / "be.npy", np.arange(8, dtype=">f8").reshape(2, 2, 2))
    arr, affine, meta = read_image_file(tmp_path / "be.npy")
    assert arr.dtype == np.dtype(np.float32) and arr.flags.writeable
    assert meta["dtype"] == "float64 (big-endian)"
    np.testing.assert_array_equal(arr.ravel(), np.arange(8))
    np.testing.assert_array_equal(affine, np.eye(4))


def test_2d_images_png16_jpeg_rgb_tiff_float(tmp_path):
    g16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    arr, _, meta = read_image_file(write_png(tmp_path / "a.png", g16))
    assert meta["spatial_shape"] == (3, 4) and meta["channels"] == 1
    np.testing.assert_array_equal(arr, g16)
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200
    arr, _, meta = read_image_file(write_png(tmp_path / "b.jpg", rgb))
    assert arr.shape == (8, 8, 3) and meta["channels"] == 3 and meta["format"] == "jpeg"
    assert abs(arr[..., 0].mean() - 200) < 3
    f32 = np.linspace(-1, 1, 20, dtype=np.float32).reshape(4, 5)
    arr, _, _ = read_image_file(write_png(tmp_path / "c.tif", f32))
    np.testing.assert_allclose(arr, f32)


def test_cmyk_jpeg_reads_as_rgb_and_rgb24_nifti_is_refused(tmp_path):
    Image.new("CMYK", (5, 4), (0, 255, 255, 0)).save(tmp_path / "print.jpg")
    arr, _, meta = read_image_file(tmp_path / "print.jpg")
    assert meta["channels"] == 3 and arr.shape == (4, 5, 3) and arr[..., 0].mean() > 200
    rgb = np.zeros((2, 2, 2), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), str(tmp_path / "rgb.nii"))
    with pytest.raises(DataError, match="rgb.nii: NIfTI data type .* is not a real number type"):
        read_header(tmp_path / "rgb.nii")


def test_multipage_tiff_is_a_volume(tmp_path):
    pages = [Image.fromarray(np.full((4, 5), i * 10, np.uint8)) for i in range(3)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    header = read_header(tmp_path / "stack.tif")
    assert header.dims == 3 and header.spatial_shape == (3, 4, 5)
    arr, _, _ = read_image_file(tmp_path / "stack.tif")
    assert arr.shape == (3, 4, 5) and arr[2, 0, 0] == 20


def test_unreadable_files_raise_dataerror_naming_the_file(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti at all")
    with pytest.raises(DataError, match="broken.nii.gz: cannot read"):
        read_header(bad)
    with pytest.raises(DataError, match="cifti.nii: is a Cifti2Image"):
        read_header(_copy(NIBABEL_DATA / "row_major.dconn.nii", tmp_path / "cifti.nii"))
    np.save(tmp_path / "five.npy", np.zeros((1, 2, 2, 2, 2)))
    with pytest.raises(DataError, match=r"five.npy: .npy with shape \(1, 2, 2, 2, 2\)"):
        read_header(tmp_path / "five.npy")


def test_to_ras_matches_nibabel_closest_canonical(tmp_path):
    # a permuted, flipped orientation (voxel axes run P, S, L) with anisotropic spacing
    orient = np.array([[0, 0, -1, 0], [-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1.0]])
    data = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32)
    path = write_nifti(tmp_path / "psl.nii.gz", data, affine_for((1.0, 2.0, 3.0), orient))
    arr, affine, meta = read_image_file(path)
    assert meta["axcodes"] == ("P", "S", "L")
    out, new_affine = to_ras(arr, affine)
    canon = nib.as_closest_canonical(nib.load(path))
    np.testing.assert_array_equal(out, canon.get_fdata(dtype=np.float32))
    np.testing.assert_allclose(new_affine, canon.affine)
    assert nib.aff2axcodes(new_affine) == ("R", "A", "S")
    lps = write_nifti(tmp_path / "lps.nii", data, affine_for(orient=LPS))
    assert read_header(lps).axcodes == ("L", "P", "S")


def _copy(src, dst):
    dst.write_bytes(src.read_bytes())
    return dst


def test_palette_png_header_agrees_with_what_is_read(tmp_path):
    """The upload check trusts the header's channel count: it must match the reader's output."""
    from PIL import Image

    from ddpm.data import read_header, read_image_file

    for transparent in (False, True):
        im = Image.fromarray((np.arange(256).reshape(16, 16) % 7).astype(np.uint8)).convert("P")
        im.putpalette([i % 256 for i in range(768)])
        path = tmp_path / f"p{int(transparent)}.png"
        im.save(path, transparency=0) if transparent else im.save(path)
        arr, _, _ = read_image_file(path)
        assert read_header(path).channels == arr.shape[-1] == (4 if transparent else 3)
