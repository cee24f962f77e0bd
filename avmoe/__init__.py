"""AVMoE: mixtures of audio-visual experts (NeurIPS 2024) beside frozen visual and audio encoders."""
from avmoe.checkpoint import load, save
from avmoe.config import ModelConfig, get_preset, list_presets
from avmoe.model import AVMoEModel, TaskModel, build_model

__all__ = ["AVMoEModel", "TaskModel", "ModelConfig", "build_model", "get_preset", "list_presets", "load", "save"]
