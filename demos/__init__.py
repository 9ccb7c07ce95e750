"""Gradio pages of CMP Studio: thin widgets + wiring over the `cmp` library."""
