"""The classes of two well-known datasets, PASCAL VOC and Cityscapes: their names and colours, in train-id order.

Google's released DeepLab models were trained on them, so the importer names those models' classes from here,
and the data readers name the datasets' classes from here. (VOC's colours are ``default_colors``.)
"""
from __future__ import annotations

VOC_LABELS = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
              "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
              "tvmonitor")
CITYSCAPES_LABELS = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                     "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                     "bicycle")
CITYSCAPES_COLORS = ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
                     (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180),
                     (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230),
                     (119, 11, 32))
