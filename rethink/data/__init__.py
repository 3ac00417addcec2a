"""Data modules built from the ``dataset`` config group (:mod:`rethink.data.registry`)."""

from rethink.data.imagenet import check_imagenet_root
from rethink.data.in_memory import ImageArrays
from rethink.data.registry import DATASETS, DatasetSettings, build_datamodule, load_arrays

__all__ = ["DATASETS", "DatasetSettings", "ImageArrays", "build_datamodule", "check_imagenet_root", "load_arrays"]
