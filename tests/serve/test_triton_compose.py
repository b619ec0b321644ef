"""docker/docker-compose.triton.yml cannot run here: check it parses and says what it must."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidtldr_deploy.serve import triton as tr

yaml = pytest.importorskip("yaml")
COMPOSE = Path(__file__).resolve().parents[2] / "docker" / "docker-compose.triton.yml"


def test_compose_file_starts_tritonserver_with_the_plugin():
    service = yaml.safe_load(COMPOSE.read_text())["services"]["tritonserver"]
    assert service["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert service["image"].endswith("-py3")
    command = service["command"]
    assert command[0] == "tritonserver"
    assert f"--model-repository={tr.CONTAINER_REPO}" in command
    lib = f"{tr.CONTAINER_REPO}/{tr.PLUGIN_FILENAME}"
    assert f"--backend-config=tensorrt,plugins={lib}" in command
    assert service["environment"]["LD_PRELOAD"] == lib
    assert any(v.endswith(f":{tr.CONTAINER_REPO}:ro") for v in service["volumes"])
    assert "8000:8000" in service["ports"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]


def test_compose_commands_match_the_repository_readme():
    load = tr.plugin_load_commands()
    assert (
        f"--backend-config=tensorrt,plugins={tr.CONTAINER_REPO}/{tr.PLUGIN_FILENAME}"
        in load["backend_config"]
    )
    assert load["ld_preload"].startswith(f"LD_PRELOAD={tr.CONTAINER_REPO}/{tr.PLUGIN_FILENAME} ")
