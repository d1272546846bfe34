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
import shutil
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

from support import live_servers
from support.live_servers import REPO, answers, free_port

COMPOSE = REPO / "docker-compose.yml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def compose() -> dict:
    return YAML(typ="safe").load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_specification():
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_says_what_the_issue_asks():
    spec = compose()
    api, web = spec["services"]["api"], spec["services"]["web"]
    assert (
        api["build"]["dockerfile"] == "docker/api.Dockerfile" and web["build"]["dockerfile"] == "docker/web.Dockerfile"
    )
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
        line.split("==", 1)
        for line in (REPO / "web_frontend/requirements.txt").read_text().splitlines()
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
    """Compose's ``${VAR}`` / ``${VAR:-default}`` / ``${VAR:?error}`` (required: an error when
    unset, as compose refuses to start); a null value means 'take it from the shell'."""
    if value is None:
        return None

    def substitute(m: re.Match) -> str:
        name, kind, rest = m.groups()
        if kind == "?" and not shell.get(name):
            raise ValueError(f"compose would refuse to start: {name} unset ({rest})")
        return shell.get(name) or (rest if kind == "-" else "") or ""

    return re.sub(r"\$\{(\w+)(?::([-?])([^}]*))?\}", substitute, str(value))


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
                value = str(folder) + value[len(path) :]
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
    shell = {
        "FACE_API_KEY": key,
        "FACE_EMBEDDER": "dlib-resnet",
        "FACE_THREADS": "1",
    }  # `FACE_API_KEY=... docker compose up`
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
    assert (
        requests.post(api.url + "/identities/obama/faces", files={"image": ("1.jpg", photo)}, timeout=60).status_code
        == 401
    )
    # ... and the site forwards the same key, so enrolling through the site works.
    enrolled = site.post(
        web.url + "/enroll",
        data={"csrf_token": token, "name": "obama", "consent": "yes"},
        files={"photos": ("1.jpg", photo, "image/jpeg")},
        timeout=120,
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
            web.url + "/enroll",
            data={"csrf_token": token, "name": "nobody", "consent": "yes"},
            files={"photos": (filename, data, "application/octet-stream")},
            timeout=120,
        )
        assert refused.status_code == status and says in refused.text, (refused.status_code, refused.text[-1500:])
    assert names_and_counts(api.url) == [{"name": "obama", "faces": 1}]
    # the gallery lives in the "gallery" named volume
    assert (compose_services["volumes"] / "gallery" / "gallery.sqlite3").is_file()


# --- scripts/run.sh ---------------------------------------------------------------------------
def test_run_sh_starts_both_and_stops_both_on_ctrl_c(tmp_path, faces_dir):
    api_port, web_port = free_port(), free_port()
    env = live_servers.clean_env(
        FACE_PORT=str(api_port),
        WEB_PORT=str(web_port),
        FACE_GALLERY=str(tmp_path / "gallery.sqlite3"),
        FACE_EMBEDDER="dlib-resnet",
        FACE_THREADS="1",
    )
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        # its own session, like a terminal's foreground job: Ctrl-C goes to the whole group
        proc = subprocess.Popen(
            ["bash", "scripts/run.sh"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 240
        while "Press Ctrl-C to stop both." not in log.read_text(errors="replace"):
            assert proc.poll() is None, f"run.sh exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"run.sh did not come up:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        text = log.read_text()
        assert f"Site: http://127.0.0.1:{web_port}" in text and f"API:  http://127.0.0.1:{api_port}" in text
        # What the README's first screen says the command prints, line for line (ports aside).
        readme = (REPO / "README.md").read_text()
        quoted = readme.split("When both answer it prints", 1)[1].split("```")[1].strip("\n").splitlines()
        assert len(quoted) == 2, quoted
        for line in quoted:
            assert line.replace(":5000", f":{web_port}").replace(":8000", f":{api_port}") in text, (line, text[-2000:])
        assert answers(f"http://127.0.0.1:{web_port}/gallery") and answers(f"http://127.0.0.1:{api_port}/health")
        servers = [p for p in psutil.Process(proc.pid).children(recursive=True) if "python" in p.name()]
        modules = sorted(p.cmdline()[-1] for p in servers)
        assert modules == ["inference_service", "web_frontend"], modules

        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        assert proc.wait(timeout=60) == 130
        gone, alive = psutil.wait_procs(servers, timeout=10)
        assert not alive, f"still running after Ctrl-C: {alive}"
        assert not answers(f"http://127.0.0.1:{web_port}/health", 1) and not answers(
            f"http://127.0.0.1:{api_port}/health", 1
        )
        assert "stopping the API and the site" in log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- docker-compose.scale.yml: PostgreSQL, API replicas, nginx in front -------------------------
SCALED = REPO / "docker-compose.scale.yml"
NGINX_CONF = REPO / "docker" / "nginx.conf"


def scaled() -> dict:
    return YAML(typ="safe").load(SCALED.read_text())


def test_scaled_compose_file_matches_the_compose_specification():
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(SCALED)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_scaled_compose_file_says_what_the_issue_asks():
    spec = scaled()
    services = spec["services"]
    pg, api, lb, web = services["postgres"], services["api"], services["lb"], services["web"]
    # official PostgreSQL image, its data on a named volume, ready when pg_isready says so
    assert re.fullmatch(r"postgres:1[56](\.\d+)?", pg["image"])
    (mount,) = pg["volumes"]
    volume, path = mount.split(":", 1)
    assert volume in spec["volumes"] and path == "/var/lib/postgresql/data"
    assert pg["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    shell = {"POSTGRES_PASSWORD": "secret"}
    # several API replicas on that PostgreSQL, started once it is healthy, not published themselves
    assert int(interpolate(api["deploy"]["replicas"], {})) >= 2
    gallery = urlsplit(interpolate(api["environment"]["FACE_GALLERY"], shell))
    with pytest.raises(ValueError):  # no password, no start
        interpolate(api["environment"]["FACE_GALLERY"], {})
    assert gallery.scheme == "postgresql" and gallery.hostname == "postgres" and gallery.password == "secret"
    assert (
        gallery.username == pg["environment"]["POSTGRES_USER"]
        and gallery.path == "/" + pg["environment"]["POSTGRES_DB"]
    )
    assert api["depends_on"] == {"postgres": {"condition": "service_healthy"}} and "ports" not in api
    assert api["environment"]["FACE_EMBEDDER"] != "auto"  # replicas must agree on the embedder
    # video jobs may run on any replica: their folder is one named volume all replicas mount
    api_mounts = {path: volume for volume, path in (m.split(":", 1) for m in api["volumes"])}
    assert api_mounts[api["environment"]["FACE_VIDEO_DIR"]] in spec["volumes"]
    # nginx in front, configured from docker/, published on loopback; the site talks to it
    assert lb["image"].startswith("nginx:")
    (conf,) = lb["volumes"]
    source, target = conf.split(":")[:2]
    assert (REPO / source).resolve() == NGINX_CONF and target in lb["command"]
    (published,) = lb["ports"]
    assert interpolate(published, {}).startswith("127.0.0.1:")
    assert web["environment"]["FACE_API_URL"] == "http://lb:8000" and "lb" in web["depends_on"]
    # the default file stays the two services on SQLite
    default = compose()
    assert set(default["services"]) == {"api", "web"}
    assert default["services"]["api"]["environment"]["FACE_GALLERY"].endswith(".sqlite3")


def nginx_on_loopback(tmp_path: Path, listen: int, upstreams: list[int]) -> list[str]:
    """The lb service's command with docker/nginx.conf pointed at loopback: the replicas' ports
    instead of Docker's DNS name, a free listening port, pid and temp files under ``tmp_path``."""
    text = NGINX_CONF.read_text()
    assert "server api:8000 resolve;" in text and "listen 8000;" in text
    text = text.replace(
        "server api:8000 resolve;", "\n        ".join(f"server 127.0.0.1:{port};" for port in upstreams)
    )
    text = text.replace("listen 8000;", f"listen 127.0.0.1:{listen};").replace(
        "pid /tmp/nginx.pid;", f"pid {tmp_path}/nginx.pid;"
    )
    # which replica answered each request, for the test to see the load spread
    text = text.replace(
        "access_log off;", f"log_format upstream '$upstream_addr';\n    access_log {tmp_path}/upstream.log upstream;"
    )
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        text = text.replace("http {", f"http {{\n    {temp}_temp_path {tmp_path}/{temp};", 1)
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    argv = list(scaled()["services"]["lb"]["command"])
    argv[argv.index("-c") + 1] = str(conf)
    return [shutil.which("nginx") or "nginx", *argv[1:], "-p", str(tmp_path)]


@pytest.fixture()
def nginx_binary():
    if shutil.which("nginx") is None:
        pytest.skip("nginx not installed: apt-get install nginx-light (.ci/run should)")


def test_nginx_config_is_valid(tmp_path, nginx_binary):
    argv = nginx_on_loopback(tmp_path, free_port(), [free_port(), free_port()])
    result = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@pytest.fixture()
def scaled_services(tmp_path, nginx_binary):
    """PostgreSQL (throwaway server), the api replicas, nginx and web, each started from its
    compose command and environment on loopback, in compose's dependency order."""
    try:
        from inference_service.gallery import factory  # noqa: F401  the PostgreSQL store

        from support.pg_server import start_postgres
    except ImportError as exc:
        pytest.skip(f"no PostgreSQL store in this checkout ({exc})")
    import psycopg

    spec = scaled()
    shell = {
        "POSTGRES_PASSWORD": "wiring-pass",
        "FACE_API_KEY": "wiring-test-key",
        "FACE_EMBEDDER": "dlib-resnet",
        "FACE_THREADS": "1",
    }
    pg_env = spec["services"]["postgres"]["environment"]
    server = start_postgres()
    servers = []
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:  # what the image does with POSTGRES_*
            conn.execute(f"CREATE ROLE {pg_env['POSTGRES_USER']} LOGIN PASSWORD '{shell['POSTGRES_PASSWORD']}'")
            conn.execute(f"CREATE DATABASE {pg_env['POSTGRES_DB']} OWNER {pg_env['POSTGRES_USER']}")
        pg_isready = next(
            p
            for p in (
                (server.bin_dir / "pg_ctl").resolve().with_name("pg_isready"),
                Path(shutil.which("pg_isready") or "pg_isready"),
            )
            if p.exists()
        )
        ready = [
            str(pg_isready) if a == "pg_isready" else a for a in spec["services"]["postgres"]["healthcheck"]["test"][1:]
        ]
        assert subprocess.run([*ready, "-h", "127.0.0.1", "-p", str(server.port)], timeout=30).returncode == 0
        api = spec["services"]["api"]
        replicas = []
        for i in range(int(interpolate(api["deploy"]["replicas"], {}))):
            port = free_port()
            env = {
                key: interpolate(raw, shell) if raw is not None else shell.get(key)
                for key, raw in api["environment"].items()
            }
            env = {k: v for k, v in env.items() if v is not None}
            env.update(
                FACE_HOST="127.0.0.1",
                FACE_PORT=str(port),
                TORCH_HOME=str(tmp_path / "models" / "torch"),
                FACE_VIDEO_DIR=str(tmp_path / "videos"),
            )  # the shared volume: one folder here
            env["FACE_GALLERY"] = env["FACE_GALLERY"].replace("@postgres:5432/", f"@127.0.0.1:{server.port}/")
            argv = [sys.executable if a == "python" else a for a in api["command"]]
            replicas.append(
                live_servers.start(
                    f"api{i}", argv, live_servers.clean_env(**env), f"http://127.0.0.1:{port}", tmp_path, timeout=300
                )
            )
            servers.append(replicas[-1])
        lb_port = free_port()
        lb = live_servers.start(
            "lb",
            nginx_on_loopback(tmp_path, lb_port, [int(urlsplit(r.url).port) for r in replicas]),
            os.environ.copy(),
            f"http://127.0.0.1:{lb_port}",
            tmp_path,
            timeout=30,
        )
        servers.append(lb)
        web_spec, web_port = spec["services"]["web"], free_port()
        env = {
            key: interpolate(raw, shell) if raw is not None else shell.get(key)
            for key, raw in web_spec["environment"].items()
        }
        env = {k: v for k, v in env.items() if v is not None}
        env.update(WEB_HOST="127.0.0.1", WEB_PORT=str(web_port), FACE_API_URL=lb.url)
        argv = [sys.executable if a == "python" else a for a in web_spec["command"]]
        web = live_servers.start("web", argv, live_servers.clean_env(**env), f"http://127.0.0.1:{web_port}", tmp_path)
        servers.append(web)
        yield {"replicas": replicas, "lb": lb, "web": web, "key": shell["FACE_API_KEY"]}
    finally:
        for running in reversed(servers):
            running.stop()
        server.remove()


def names_and_counts(url: str) -> list[dict]:
    """``GET /identities`` reduced to name and face count (consent records vary by time and key)."""
    listing = requests.get(url + "/identities", timeout=10).json()["identities"]
    return [{"name": i["name"], "faces": i["faces"]} for i in listing]


def _listed_everywhere(replicas, expected: list[dict], within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while True:
        lists = [names_and_counts(r.url) for r in replicas]
        if all(found == expected for found in lists) or time.monotonic() > deadline:
            return all(found == expected for found in lists)
        time.sleep(0.1)


def test_scaled_services_share_one_gallery_through_nginx(scaled_services, faces_dir):
    replicas, lb, web = scaled_services["replicas"], scaled_services["lb"], scaled_services["web"]
    site = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', site.get(web.url + "/enroll", timeout=30).text).group(1)
    photo = (faces_dir / "gallery/obama/1.jpg").read_bytes()
    enrolled = site.post(
        web.url + "/enroll",
        data={"csrf_token": token, "name": "obama", "consent": "yes"},
        files={"photos": ("1.jpg", photo, "image/jpeg")},
        timeout=120,
    )
    assert enrolled.status_code == 200 and "Added 1 face to <strong>obama</strong>" in enrolled.text, enrolled.text[
        -1500:
    ]
    # whichever replica nginx sent the write to, every replica lists and recognises the person
    assert _listed_everywhere(replicas, [{"name": "obama", "faces": 1}])
    probe = (faces_dir / "gallery/obama/2.jpg").read_bytes()
    for replica in replicas:
        faces = requests.post(replica.url + "/recognize", files={"image": ("2.jpg", probe)}, timeout=120).json()[
            "faces"
        ]
        assert [f["identity"] for f in faces] == ["obama"]
    # nginx spreads requests over the replicas ...
    log = Path(lb.log).parent / "upstream.log"
    for _ in range(12):
        assert names_and_counts(lb.url) == [{"name": "obama", "faces": 1}]
    time.sleep(0.5)  # nginx writes its access log line after the response
    answered = set(log.read_text().split())
    assert answered == {f"127.0.0.1:{urlsplit(r.url).port}" for r in replicas}, answered
    # ... and keeps serving reads when one of them stops
    replicas[0].stop()
    for _ in range(6):
        assert requests.get(lb.url + "/identities", timeout=10).status_code == 200
    # a delete through nginx is gone everywhere
    gone = requests.delete(lb.url + "/identities/obama", headers={"X-API-Key": scaled_services["key"]}, timeout=30)
    assert gone.status_code == 204
    assert _listed_everywhere(replicas[1:], [])
