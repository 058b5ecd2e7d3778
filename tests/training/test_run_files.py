import pytest
import torch

import mtclar.model.checkpoint as checkpoint_module
from mtclar.model.checkpoint import Checkpoint, load_checkpoint, state_with_prefix
from mtclar.model.siamese import HeadConfig, PairHeads
from mtclar.training.run_files import JsonLog, load_state, publish, save_state

ENCODER = {"name": "faceapi-expression", "input_size": 112, "embed_dim": 256, "weights_id": "x",
           "weights_in_checkpoint": False}


def _checkpoint(name: str, seed: int) -> Checkpoint:
    torch.manual_seed(seed)
    heads = PairHeads(HeadConfig(hidden=(16,)))
    return Checkpoint(name=name, encoder=ENCODER, heads=heads.config, heads_trained=True,
                      state=state_with_prefix(heads, "heads."))


def test_publish_switches_the_alias_and_cleans_up(tmp_path):
    first = _checkpoint("run-e001", 0)
    publish(first, tmp_path, "best")
    assert load_checkpoint(tmp_path / "best").name == "run-e001"
    publish(_checkpoint("run-e002", 1), tmp_path, "best")
    publish(_checkpoint("run-e002", 1), tmp_path, "final")
    assert load_checkpoint(tmp_path / "best").name == "run-e002"
    assert not (tmp_path / "checkpoints" / "run-e001").exists()  # no alias points there any more
    publish(_checkpoint("run-e003", 2), tmp_path, "final")
    assert (tmp_path / "checkpoints" / "run-e002").exists()  # still the best
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "checkpoints", "final"]


def test_a_crash_while_saving_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    old = _checkpoint("run-e001", 0)
    publish(old, tmp_path, "best")

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoint_module, "save_file", crash)
    with pytest.raises(OSError, match="simulated"):
        publish(_checkpoint("run-e002", 1), tmp_path, "best")
    loaded = load_checkpoint(tmp_path / "best")
    assert loaded.name == "run-e001"
    torch.testing.assert_close(loaded.state["heads.similarity.1.weight"], old.state["heads.similarity.1.weight"])
    leftovers = [p.name for p in (tmp_path / "checkpoints").iterdir()]
    assert leftovers == ["run-e001"]  # the staging folder is gone too


def test_a_crash_while_overwriting_a_checkpoint_folder_keeps_it(tmp_path, monkeypatch):
    path = _checkpoint("same", 0).save(tmp_path / "ck")
    monkeypatch.setattr(checkpoint_module, "save_file", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        _checkpoint("same", 1).save(path)
    assert load_checkpoint(path).name == "same"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_state_file_is_replaced_atomically(tmp_path, monkeypatch):
    save_state({"epoch": 1}, tmp_path)

    def crash(obj, f, *args, **kwargs):
        f.write(b"half")
        raise OSError("killed (simulated)")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_state({"epoch": 2}, tmp_path)
    monkeypatch.undo()
    assert load_state(tmp_path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_json_log_appends_lines(tmp_path):
    log = JsonLog(tmp_path)
    log.write({"epoch": 1, "loss": 0.5})
    log.write({"epoch": 2, "loss": float("nan")})
    records = log.read()
    assert [r["epoch"] for r in records] == [1, 2]
