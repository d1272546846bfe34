"""docker-compose.yml and scripts/run.sh, checked without Docker.

The compose file is validated against the compose specification's JSON schema, then each
service's own ``command`` and ``environment`` (interpolated as compose would, with container
host names, ports and volume paths mapped onto loopback ports and temporary folders) start the
real services, and the site must talk to the API through them.
"""
from __future__ import annotations

import io
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import requests
from PIL import Image
from ruamel.yaml import YAML

import live_servers
from live_servers import REPO, answers, free_port

COMPOSE = REPO / "docker-compose.yml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def compose() -> dict:
    return YAML(typ="safe").load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_specification():
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_says_what_the_issue_asks():
    spec = compose()
    api, web = spec["services"]["api"], spec["services"]["web"]
    assert api["build"]["dockerfile"] == "docker/api.Dockerfile" and web["build"]["dockerfile"] == "docker/web.Dockerfile"
    for name in ("api", "web"):
        assert (REPO / spec["services"][name]["build"]["dockerfile"]).is_file()
    assert web["environment"]["FACE_API_URL"] == "http://api:8000"
    assert web["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert "/health" in " ".join(api["healthcheck"]["test"])
    # the key comes from the environment running compose, for both services
    assert "FACE_API_KEY" in api["environment"] and api["environment"]["FACE_API_KEY"] is None
    assert "FACE_API_KEY" in web["environment"] and web["environment"]["FACE_API_KEY"] is None
    # named volumes: the gallery and the weights cache
    mounts = dict(v.split(":", 1) for v in api["volumes"])
    assert set(mounts) <= set(spec["volumes"]) and len(mounts) == 2
    assert str(Path(api["environment"]["FACE_GALLERY"]).parent) == mounts["gallery"]
    assert api["environment"]["TORCH_HOME"].startswith(mounts["models"])
    # published on loopback only, onto the port each service listens on
    for service, port_var in ((api, "FACE_PORT"), (web, "WEB_PORT")):
        (published,) = service["ports"]
        host_ip, _host_port, container_port = interpolate(published, {}).split(":")
        assert host_ip == "127.0.0.1" and container_port == service["environment"][port_var]


def pyproject_pins(extra: str | None = None) -> dict[str, str]:
    """name -> version of pyproject.toml's runtime dependencies (or of one extra), extras of a name dropped."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = project["optional-dependencies"][extra] if extra else project["dependencies"]
    pins = {}
    for requirement in requirements:
        name, version = requirement.split("==", 1)
        pins[re.sub(r"\[.*\]", "", name)] = version
    return pins


def test_images_install_what_pyproject_pins():
    pins = pyproject_pins()
    web_pins = dict(
        line.split("==", 1) for line in (REPO / "web_frontend/requirements.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    )
    assert web_pins and all(pins.get(name) == version for name, version in web_pins.items()), web_pins
    assert not {"torch", "torchvision", "numpy"} & set(web_pins)
    api_dockerfile = (REPO / "docker/api.Dockerfile").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in api_dockerfile
    # the torch pair comes from the CPU index at pyproject's pins, then the project itself
    assert "(torch|torchvision)==" in api_dockerfile and "pip install .\n" in api_dockerfile
    assert {"torch", "torchvision"} <= set(pins)


def test_the_runtime_carries_no_test_tools():
    """scripts/run.sh installs the runtime only: pytest, dlib and playwright are the test extra's."""
    runtime, test = pyproject_pins(), pyproject_pins("test")
    assert {"pytest", "dlib-bin", "playwright", "ruff"} <= set(test)
    assert not set(test) & set(runtime)


def test_the_site_needs_no_model_code():
    code = (
        "import sys, web_frontend.app, web_frontend.__main__, web_frontend.drawing;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'numpy', 'cv2', 'facenet_pytorch', 'fastapi', 'inference_service'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


# --- the services as compose starts them ------------------------------------------------------
def interpolate(value: object, shell: dict[str, str]) -> str | None:
    """Compose's ``${VAR}`` / ``${VAR:-default}``; a null value means 'take it from the shell'."""
    if value is None:
        return None
    return re.sub(
        r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: shell.get(m.group(1)) or (m.group(2) or ""), str(value)
    )


def as_compose_would(spec: dict, name: str, shell: dict[str, str], ports: dict[str, int], volumes: Path):
    """(argv, env) for service ``name``: compose's environment, with service host names and
    container ports mapped to loopback ports and volume mount points to folders under ``volumes``."""
    service = spec["services"][name]
    mounts = {}
    for mount in service.get("volumes", []):
        volume, path = mount.split(":", 1)
        mounts[path] = volumes / volume
        mounts[path].mkdir(parents=True, exist_ok=True)
    container_port = {svc: re.search(r":(\d+)$", s["ports"][0]).group(1) for svc, s in spec["services"].items()}
    env = {}
    for key, raw in service["environment"].items():
        value = interpolate(raw, shell) if raw is not None else shell.get(key)
        if value is None:
            continue
        if value == "0.0.0.0":  # listen on every interface in a container: loopback here
            value = "127.0.0.1"
        elif key.endswith("_PORT") and value == container_port[name]:
            value = str(ports[name])
        elif value.startswith("http://"):
            url = urlsplit(value)
            if url.hostname in spec["services"] and str(url.port) == container_port[url.hostname]:
                value = f"http://127.0.0.1:{ports[url.hostname]}{url.path}"
        for path, folder in mounts.items():
            if value == path or value.startswith(path + "/"):
                value = str(folder) + value[len(path):]
        env[key] = value
    command = service["command"]
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[0] == "python":
        argv[0] = sys.executable
    return argv, env


def healthcheck(spec: dict, name: str, ports: dict[str, int]) -> list[str]:
    """The service's healthcheck command, pointed at its loopback port."""
    test = list(spec["services"][name]["healthcheck"]["test"])
    assert test[0] == "CMD"
    container_port = re.search(r":(\d+)$", spec["services"][name]["ports"][0]).group(1)
    argv = [arg.replace(f"127.0.0.1:{container_port}", f"127.0.0.1:{ports[name]}") for arg in test[1:]]
    return [sys.executable if a == "python" else a for a in argv]


@pytest.fixture()
def compose_services(tmp_path):
    """Start api, wait for its healthcheck to pass (depends_on: service_healthy), then web."""
    spec = compose()
    key = "wiring-test-key"
    shell = {"FACE_API_KEY": key, "FACE_EMBEDDER": "dlib-resnet", "FACE_THREADS": "1"}  # `FACE_API_KEY=... docker compose up`
    ports = {name: free_port() for name in spec["services"]}
    servers = []
    try:
        for name in ("api", "web"):
            argv, env = as_compose_would(spec, name, shell, ports, tmp_path / "volumes")
            url = f"http://127.0.0.1:{ports[name]}"
            servers.append(live_servers.start(name, argv, live_servers.clean_env(**env), url, tmp_path))
            check = subprocess.run(healthcheck(spec, name, ports), capture_output=True, text=True, timeout=30)
            assert check.returncode == 0, f"{name}'s healthcheck failed: {check.stderr}"
        yield {"api": servers[0], "web": servers[1], "key": key, "volumes": tmp_path / "volumes"}
    finally:
        for server in reversed(servers):
            server.stop()


def test_services_started_as_compose_would_talk_to_each_other(compose_services, faces_dir):
    api, web = compose_services["api"], compose_services["web"]
    site = requests.Session()
    page = site.get(web.url + "/enroll", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    photo = (faces_dir / "gallery/obama/1.jpg").read_bytes()
    # The API needs the key (compose gave it FACE_API_KEY) ...
    assert requests.post(api.url + "/identities/obama/faces", files={"image": ("1.jpg", photo)}, timeout=60).status_code == 401
    # ... and the site forwards the same key, so enrolling through the site works.
    enrolled = site.post(
        web.url + "/enroll", data={"csrf_token": token, "name": "obama", "consent": "yes"},
        files={"photos": ("1.jpg", photo, "image/jpeg")}, timeout=120,
    )
    assert enrolled.status_code == 200, enrolled.text
    assert "Added 1 face to <strong>obama</strong>" in enrolled.text
    gallery = site.get(web.url + "/gallery", timeout=30).text
    assert re.search(r'<td class="name">obama</td>\s*<td>1</td>', gallery)
    # the API's refusals reach the page as readable messages, and nothing is stored
    blank = io.BytesIO()
    Image.new("RGB", (320, 240), (128, 128, 128)).save(blank, format="JPEG")
    for filename, data, status, says in (
        ("blank.jpg", blank.getvalue(), 422, "Not accepted: no face"),
        ("notes.txt", b"not an image at all", 415, "That file is not an image the service can read"),
    ):
        refused = site.post(
            web.url + "/enroll", data={"csrf_token": token, "name": "nobody", "consent": "yes"},
            files={"photos": (filename, data, "application/octet-stream")}, timeout=120,
        )
        assert refused.status_code == status and says in refused.text, (refused.status_code, refused.text[-1500:])
    assert requests.get(api.url + "/identities", timeout=30).json()["identities"] == [{"name": "obama", "faces": 1}]
    # the gallery lives in the "gallery" named volume
    assert (compose_services["volumes"] / "gallery" / "gallery.sqlite3").is_file()


# --- scripts/run.sh ---------------------------------------------------------------------------
def test_run_sh_starts_both_and_stops_both_on_ctrl_c(tmp_path, faces_dir):
    api_port, web_port = free_port(), free_port()
    env = live_servers.clean_env(
        FACE_PORT=str(api_port), WEB_PORT=str(web_port), FACE_GALLERY=str(tmp_path / "gallery.sqlite3"),
        FACE_EMBEDDER="dlib-resnet", FACE_THREADS="1",
    )
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        # its own session, like a terminal's foreground job: Ctrl-C goes to the whole group
        proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while "Press Ctrl-C to stop both." not in log.read_text(errors="replace"):
            assert proc.poll() is None, f"run.sh exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"run.sh did not come up:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        text = log.read_text()
        assert f"Site: http://127.0.0.1:{web_port}" in text and f"API:  http://127.0.0.1:{api_port}" in text
        assert answers(f"http://127.0.0.1:{web_port}/gallery") and answers(f"http://127.0.0.1:{api_port}/health")
        servers = [p for p in psutil.Process(proc.pid).children(recursive=True) if "python" in p.name()]
        modules = sorted(p.cmdline()[-1] for p in servers)
        assert modules == ["inference_service", "web_frontend"], modules

        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        assert proc.wait(timeout=60) == 130
        gone, alive = psutil.wait_procs(servers, timeout=10)
        assert not alive, f"still running after Ctrl-C: {alive}"
        assert not answers(f"http://127.0.0.1:{web_port}/health", 1) and not answers(f"http://127.0.0.1:{api_port}/health", 1)
        assert "stopping the API and the site" in log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
