"""docs/deployment.md: every larder.yaml it shows is one larder accepts."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from larder.config import LarderConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


def test_every_larder_yaml_in_the_deployment_guide_is_valid():
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2
    for block in blocks:
        config = LarderConfig(**yaml.safe_load(block))
        assert config.catalog_url and config.storage and config.mlflow_tracking_uri
        assert config.default_online_store in config.online_stores
