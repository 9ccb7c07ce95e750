"""Network parts of CMP: typed configs, encoders, decoder, bins -> flow."""
from .config import CONFIGS, RESNET50, SLIM, TINY, CMPConfig, DecoderConfig, EncoderConfig
from .decoder import DecoderPartials
from .network import CMP, IMAGE_MEAN, IMAGE_STD, ImageFeatures, build_cmp, normalize_image

__all__ = ["CMP", "CMPConfig", "CONFIGS", "DecoderConfig", "DecoderPartials", "EncoderConfig", "IMAGE_MEAN",
           "IMAGE_STD", "ImageFeatures", "RESNET50", "SLIM", "TINY", "build_cmp", "normalize_image"]
