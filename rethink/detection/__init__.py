"""Transfer to object detection (the paper's Sec. 4): pruned ImageNet ResNets as backbones of torchvision's Faster
R-CNN (``task=detection``), with the embedded shapes set and PASCAL VOC as data."""
