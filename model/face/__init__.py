from .align import AlignConfig, align_face
from .detector import DetectorConfig, Face, RetinaFaceDetector
from .pipeline import FacePipeline, PipelineConfig, TrackedBatch
from .tracking import PersonTracker, TrackerConfig

__all__ = ["AlignConfig", "DetectorConfig", "Face", "FacePipeline", "PersonTracker", "PipelineConfig",
           "RetinaFaceDetector", "TrackedBatch", "TrackerConfig", "align_face"]
