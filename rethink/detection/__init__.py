"""Transfer to object detection (the paper's Sec. 4): pruned ImageNet ResNets as backbones of torchvision's Faster
R-CNN (``task=detection``), with the embedded shapes set and PASCAL VOC as data. Importing the package registers the
task (:mod:`rethink.detection.task`)."""

from rethink.detection import task  # noqa: F401  (registers task=detection)
