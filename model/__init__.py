"""MT-CLAR model code: face pipeline, encoders, Siamese heads, few-shot labeller. Pure torch + numpy."""
