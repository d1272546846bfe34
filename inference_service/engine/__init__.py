"""Face engine: image decoding, MTCNN detection, alignment and embedders."""

from .detection import Face, MTCNNDetector, iou, pick_largest
from .engine import AnalyzedFace, FaceEngine, select_device
from .images import CorruptImageError, ImageError, ImageTooLargeError, UnsupportedImageError, load_image

__all__ = [
    "AnalyzedFace",
    "CorruptImageError",
    "Face",
    "FaceEngine",
    "ImageError",
    "ImageTooLargeError",
    "MTCNNDetector",
    "UnsupportedImageError",
    "iou",
    "load_image",
    "pick_largest",
    "select_device",
]
