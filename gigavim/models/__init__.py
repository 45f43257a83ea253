"""Vision Mamba backbones, segmentation heads, model bundles and the model registry."""

from gigavim.models.checkpoint import load_official_checkpoint, load_pretrained_backbone, read_checkpoint
from gigavim.models.factory import build_segmenter
from gigavim.models.heads import FPNHead, LightHead
from gigavim.models.official import infer_official_config, vim_from_official_config
from gigavim.models.registry import create_model, list_models, register_model
from gigavim.models.segmenter import VimSegmenter
from gigavim.models.vim import VisionMamba

__all__ = [
    "FPNHead",
    "LightHead",
    "VimSegmenter",
    "VisionMamba",
    "build_segmenter",
    "create_model",
    "infer_official_config",
    "list_models",
    "load_official_checkpoint",
    "load_pretrained_backbone",
    "read_checkpoint",
    "register_model",
    "vim_from_official_config",
]
