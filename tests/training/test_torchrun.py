import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mtclar.model.checkpoint import load_checkpoint


@pytest.mark.slow
def test_torchrun_two_cpu_processes_one_epoch(smoke_data, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    mtclar = shutil.which("mtclar") or str(Path(sys.executable).with_name("mtclar"))
    if not torchrun.exists() or not Path(mtclar).exists():
        pytest.skip("torchrun or the mtclar entry point is not installed")
    out = tmp_path / "ddp"
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", mtclar, "train",
               "--data", str(smoke_data["train"]), "--val-data", str(smoke_data["val"]),
               "--videos", str(smoke_data["videos"]), "--epochs", "1", "--batch-size", "8",
               "--encoder-mode", "frozen", "--out", str(out), "--workers", "0", "--threads", "1",
               "--cache-dir", str(smoke_data["cache"]), "--no-progress", "--set", "model.heads.hidden=[256, 64]"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["stage"]) for r in records] == [(1, "train"), (1, "val")]  # rank 0 alone wrote
    assert records[0]["pairs"] == 30  # both ranks' shards counted: one epoch = one pair per row
    checkpoint = load_checkpoint(out / "final")
    assert checkpoint.trained_on["world_size"] == 2 and checkpoint.heads_trained
    assert done.stdout.count("trained 1 epochs") == 1
