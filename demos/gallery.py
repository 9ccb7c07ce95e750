"""Gallery page (placeholder until its issue lands)."""
from __future__ import annotations

import gradio as gr

from .common import Context


def build(ctx: Context) -> None:
    gr.Markdown("This page is being built.")
