"""Vision Mamba backbones, segmentation heads, model bundles and the model registry."""
