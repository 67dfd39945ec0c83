from __future__ import annotations

from pathlib import Path

import pytest

from tandem.streams.settings import Settings, read_config_file


def test_env_overrides_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "tandem.conf"
    cfg.write_text("# comment\nbroker = 10.0.0.1:9092\napp_id = a\n")
    s = Settings.from_env({"TANDEM_CONFIG": str(cfg), "TANDEM_APP_ID": "b"})
    assert s.broker == "10.0.0.1:9092" and s.app_id == "b"
    assert s.broker_url == "kafka://10.0.0.1:9092"


def test_bad_config_names_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.conf"
    cfg.write_text("broker = x:1\n\nnonsense\n")
    with pytest.raises(ValueError, match=r"bad.conf:3: expected 'key = value'"):
        read_config_file(cfg)
    cfg.write_text("colour = blue\n")
    with pytest.raises(ValueError, match=r"bad.conf:1: unknown key 'colour'"):
        read_config_file(cfg)
