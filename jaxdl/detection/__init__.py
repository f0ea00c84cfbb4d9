"""Detection evaluation: TP / FP matching, VOC AP and COCO mAP.

* :func:`match_detections`: greedy, fixed-shape, vmappable matching of one
  image's detections to its ground truths (``COCOeval.evaluateImg``).
* :func:`voc_ap`: py-faster-rcnn's ``voc_ap`` (VOC2007 11-point and VOC2010+
  all-point AP) of a precision-recall curve, jittable.
* :func:`voc_evaluate`, :func:`coco_evaluate`, :func:`coco_accumulate`:
  whole-dataset evaluation of COCO-format dicts, equal to py-faster-rcnn's
  ``voc_eval`` and to ``pycocotools``' ``COCOeval``. A thin host layer
  validates and packs the dicts; matching and accumulation run jitted.
"""

from jaxdl.detection._ap import voc_ap
from jaxdl.detection._coco import CocoAccumulation
from jaxdl.detection._coco import coco_accumulate
from jaxdl.detection._coco import coco_evaluate
from jaxdl.detection._match import Matches
from jaxdl.detection._match import match_detections
from jaxdl.detection._voc import voc_evaluate

__all__ = ["CocoAccumulation", "Matches", "coco_accumulate", "coco_evaluate",
           "match_detections", "voc_ap", "voc_evaluate"]
