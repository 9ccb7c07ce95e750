"""Network parts of CMP: typed configs, encoders, the bin decoder, the affinity propagation."""
from .affinity import AffinityCMP, AffinityFeatures
from .config import (CONFIGS, RESNET50, SLIM, SLIM_AFFINITY, TINY, TINY_AFFINITY, CMPConfig, DecoderConfig,
                     EncoderConfig)
from .decoder import DecoderPartials
from .network import CMP, IMAGE_MEAN, IMAGE_STD, ImageFeatures, build_cmp, normalize_image

__all__ = ["AffinityCMP", "AffinityFeatures", "CMP", "CMPConfig", "CONFIGS", "DecoderConfig", "DecoderPartials",
           "EncoderConfig", "IMAGE_MEAN", "IMAGE_STD", "ImageFeatures", "RESNET50", "SLIM", "SLIM_AFFINITY", "TINY",
           "TINY_AFFINITY", "build_cmp", "normalize_image"]
