"""CMP Studio library: Conditional Motion Propagation model, engine and tools.

Never imports Gradio; pages in ``demos/`` call into this package, not back.
"""
from .engine import Engine, ImageHandle

__all__ = ["Engine", "ImageHandle"]
__version__ = "0.1.0"
