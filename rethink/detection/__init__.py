"""Transfer to object detection (the paper's Sec. 4): Faster R-CNN on PASCAL VOC, or on an embedded shapes set."""
