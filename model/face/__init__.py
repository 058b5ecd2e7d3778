from .align import AlignConfig, align_face
from .detector import DetectorConfig, Face, RetinaFaceDetector
from .follow import FollowConfig
from .pipeline import FacePipeline, PipelineConfig, TrackedBatch
from .tracking import PersonTracker, TrackerConfig

__all__ = ["AlignConfig", "DetectorConfig", "Face", "FacePipeline", "FollowConfig", "PersonTracker", "PipelineConfig",
           "RetinaFaceDetector", "TrackedBatch", "TrackerConfig", "align_face"]
