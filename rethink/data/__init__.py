"""Data modules built from the ``dataset`` config group (:mod:`rethink.data.registry`)."""

from rethink.data.imagenet import check_imagenet_root
from rethink.data.in_memory import ImageArrays
from rethink.data.registry import (
    DATASETS,
    Dataset,
    DatasetSettings,
    InMemoryDataset,
    build_datamodule,
    load_arrays,
    register_dataset,
)

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetSettings",
    "ImageArrays",
    "InMemoryDataset",
    "build_datamodule",
    "check_imagenet_root",
    "load_arrays",
    "register_dataset",
]
