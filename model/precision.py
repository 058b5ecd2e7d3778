"""The encoder precisions a setting may name; torch-free, so that reading the settings imports no model code."""

PRECISIONS = ("auto", "fp32", "fp16")  # auto: fp16 on CUDA, fp32 elsewhere (model/device.py resolves it)
