"""ViTPose inference engine: model, loading, pre/post-processing and backends."""

from .configs import DATASETS, ModelLoadError
from .estimator import VitPoseEstimator
from .loading import LoadedModel, ModelSpec, load_vitpose

__all__ = ["DATASETS", "LoadedModel", "ModelLoadError", "ModelSpec", "VitPoseEstimator", "load_vitpose"]
