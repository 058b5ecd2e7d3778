"""Write the shipped default checkpoint (model/weights/default): FaceExpressionNet + the cold-start predictor.

Nothing here is trained on V/A (no offline model predicts it): the kernel settings below came from
`python benchmarks/tune_coldstart.py` on single_face.mp4 (benchmarks/data/dev_labels.csv) and are
reported on other clips by benchmarks/fewshot.py. `fit` / `mtclar finetune` train the MT-CLAR heads
on a project's own labels and replace this model only where they predict held-out anchors better.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtclar.model.checkpoint import DEFAULT_CHECKPOINT, Checkpoint  # noqa: E402
from mtclar.model.encoders import DEFAULT_ENCODER, create_encoder  # noqa: E402
from mtclar.model.face import PipelineConfig  # noqa: E402
from mtclar.model.fewshot import KernelConfig, LabelerConfig  # noqa: E402

NAME = "mtclar-faceapi-coldstart-1"
KERNEL = KernelConfig(similarity_temperature=0.02, time_scale_s=1.0, prior_weight=(0.8, 0.3))


def main() -> None:
    encoder = create_encoder(DEFAULT_ENCODER)
    checkpoint = Checkpoint(
        name=NAME,
        encoder={**encoder.config.to_dict(), "weights_id": encoder.weights_id, "weights_in_checkpoint": False},
        labeler=LabelerConfig(method="auto", strategy="kernel", kernel=KERNEL),
        pipeline=PipelineConfig().to_dict(),
        trained_on={"va": "none: cold-start kernel predictor over the anchors",
                    "tuned_on": "benchmarks/data/dev_labels.csv (single_face)"},
        created="2026-11-23T00:00:00+00:00",
    )
    print(checkpoint.save(DEFAULT_CHECKPOINT))


if __name__ == "__main__":
    main()
