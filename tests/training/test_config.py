import pytest

from mtclar.training.config import PAPER_CONFIG, ConfigError, TrainConfig, load_config, override, parse_set


def test_shipped_yaml_holds_the_paper_defaults():
    assert PAPER_CONFIG.is_file()
    config = load_config(PAPER_CONFIG)
    assert config == TrainConfig()
    assert config == load_config()  # the default config file
    assert config.optim.batch_size == 256 and config.optim.epochs == 40
    assert config.optim.lr == 1e-4 and config.optim.weight_decay == 1e-4
    assert config.optim.plateau_factor == 0.1 and config.optim.plateau_patience == 5
    assert config.model.heads.hidden == (2048, 1024, 512, 128) and config.model.heads.dropout == 0.5
    assert config.augment.degrees == 20 and config.augment.scale == (0.8, 1.2) and config.augment.shear == 0.1
    assert config.sl.batch_size == 512 and config.sl.epochs == 60 and config.sl.step_size == 15


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: 1.0e-3\n  learning_rate: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*optim.*learning_rate"):
        load_config(path)
    path.write_text("optimiser:\n  lr: 1.0e-3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*optimiser"):
        load_config(path)
    path.write_text("model:\n  heads:\n    widths: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*heads.*widths"):
        load_config(path)


def test_bad_values_are_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  encoder_mode: half\n")
    with pytest.raises(ConfigError, match="encoder_mode"):
        load_config(path)
    path.write_text("optim:\n  epochs: forty\n")
    with pytest.raises(ConfigError, match="epochs"):
        load_config(path)


def test_yaml_1e_minus_4_without_a_dot_still_reads_as_a_number(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 1e-3\n")
    assert load_config(path).optim.lr == 1e-3


def test_overrides_and_set():
    config = override(TrainConfig(), {"optim.epochs": 2, "model.encoder_mode": "frozen", "data.train": None})
    assert config.optim.epochs == 2 and config.model.encoder_mode == "frozen"
    config = override(config, parse_set(["optim.lr=1e-3", "model.heads.hidden=[256, 64]"]))
    assert config.optim.lr == 1e-3 and config.model.heads.hidden == (256, 64)
    with pytest.raises(ConfigError, match="unknown key 'lrr'"):
        override(config, {"optim.lrr": 1})
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set(["optim.lr"])
    assert TrainConfig.from_dict(config.to_dict()) == config
