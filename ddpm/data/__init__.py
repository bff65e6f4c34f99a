"""Data: read NIfTI / .npy / 2D images, preprocess once (cached), serve as torch datasets."""
from .datasets import (DATASETS, Image2DDiffusionDataset, Volume3DDiffusionDataset, build_datasets,
                       find_files, split_files)
from .inspect import format_inspect_table, inspect_path
from .io import SUPPORTED_EXTS, DataError, read_header, read_image_file
from .preprocess import DataWarning, PreprocessSettings, preprocess_file

__all__ = [
    "DATASETS", "DataError", "DataWarning", "Image2DDiffusionDataset", "PreprocessSettings",
    "SUPPORTED_EXTS", "Volume3DDiffusionDataset", "build_datasets", "find_files",
    "format_inspect_table", "inspect_path", "preprocess_file", "read_header", "read_image_file",
    "split_files",
]
