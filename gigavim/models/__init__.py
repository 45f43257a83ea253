"""Vim backbones, segmentation heads, the architecture registry and the catalog of trained bundles."""

from gigavim.models.architectures import create_model, list_architectures, register_model
from gigavim.models.catalog import list_models, load_model
from gigavim.models.checkpoint import load_official_checkpoint, load_pretrained_backbone, read_checkpoint
from gigavim.models.factory import build_segmenter
from gigavim.models.heads import FPNHead, LightHead
from gigavim.models.official import infer_official_config, vim_from_official_config
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
    "list_architectures",
    "list_models",
    "load_model",
    "load_official_checkpoint",
    "load_pretrained_backbone",
    "read_checkpoint",
    "register_model",
    "vim_from_official_config",
]
