"""Serving: Triton Inference Server model repositories built from exported graphs and engines."""
