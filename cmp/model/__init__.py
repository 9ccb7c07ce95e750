"""Network parts of CMP: typed configs, encoders, the bin decoder, the affinity propagation."""
from .affinity import AffinityCMP, AffinityFeatures
from .config import (CONFIGS, RESNET50, SLIM, SLIM_AFFINITY, TINY, TINY_AFFINITY, AffinityHead, BinHead, CMPConfig,
                     DecoderConfig, EncoderConfig, Head)
from .decoder import DecoderPartials
from .network import CMP, IMAGE_MEAN, IMAGE_STD, ImageFeatures, build_cmp, normalize_image

#: Either kind of network (what :func:`build_cmp` returns for a config's head).
CMPNetwork = CMP | AffinityCMP

__all__ = ["AffinityCMP", "AffinityFeatures", "AffinityHead", "BinHead", "CMP", "CMPConfig", "CMPNetwork", "Head", "CONFIGS", "DecoderConfig", "DecoderPartials",
           "EncoderConfig", "IMAGE_MEAN", "IMAGE_STD", "ImageFeatures", "RESNET50", "SLIM", "SLIM_AFFINITY", "TINY",
           "TINY_AFFINITY", "build_cmp", "normalize_image"]
