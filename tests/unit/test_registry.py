"""The embedder registry is the one list: the settings, the pipeline's CLI and evaluation read it.
And the one atomic writer leaves the old file whole when a write fails. No model weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from inference_service.atomic import atomic_path, write_json
from inference_service.config import Settings
from inference_service.registry import EMBEDDER_CHOICES, EMBEDDERS, EmbedderName


def test_every_embedder_says_its_dimension_threshold_and_source():
    assert set(EMBEDDERS) == {"dlib-resnet", "facenet-vggface2", "facenet-casia-webface"}
    for spec in EMBEDDERS.values():
        assert spec.dim in (128, 512) and 0 < spec.default_threshold < 1 and len(spec.threshold_source) > 80
        module, function = spec.loader.split(":")
        assert module.startswith("inference_service.engine.embedders.") and function


def test_settings_and_cli_take_their_choices_from_the_registry():
    assert get_args(EmbedderName) == EMBEDDER_CHOICES == ("auto", *EMBEDDERS)
    assert Settings(embedder="facenet-casia-webface").embedder == "facenet-casia-webface"
    with pytest.raises(ValidationError):
        Settings(embedder="arcface")
    from pipeline.__main__ import build_parser

    parser = build_parser()
    assert parser.parse_args(["faces", "run", "--embedder", "dlib-resnet"]).embedder == "dlib-resnet"
    with pytest.raises(SystemExit):
        parser.parse_args(["faces", "run", "--embedder", "arcface"])


def test_the_registry_imports_no_model_code():
    import subprocess
    import sys

    code = "import sys, inference_service.config; print(sorted({'torch', 'numpy', 'cv2'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path):
    target = tmp_path / "report.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"v": 2, "half')
        raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    write_json(target, {"v": 2}, indent=2)
    assert json.loads(target.read_text()) == {"v": 2}
