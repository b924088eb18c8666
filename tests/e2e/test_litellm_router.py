"""``ralign run`` behind a real LiteLLM proxy (docs/scaling.md): one model name over two
OpenAI-compatible deployments (loopback stand-ins). The proxy spreads the GenRM's and the
meta-judge's requests over both and gives the numbers of a direct run; with one deployment
dead (refusing connections, or answering 503) the router retries on the other, so the run
completes with the same numbers and our engine sees no failure.

Where retries are counted: our engine counts its own in ``results.json`` (``usage.<role>.calls``
minus ``requests``, and ``failures``); the router's are invisible to it and counted by LiteLLM
(the ``x-litellm-attempted-retries`` header of each answer; here, exactly, by the failing
stand-in's own request log).

The proxy runs as a subprocess from its own environment: ``litellm[proxy]`` caps rich and
huggingface_hub below what inspect-ai and transformers need, so it cannot share the project's
virtualenv. ``$RALIGN_LITELLM`` names its ``litellm`` command, else PATH or this Python's bin
folder has one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ralign_tasks.cli import main
from ralign_tasks.testing.loopback import LoopbackServer, Reply, stand_in
from tests.support.folders import run_dir

pytestmark = pytest.mark.slow

# One model name per pair of deployments; each group has its own deployments (and so its own
# cooldown state in the router), so the tests do not depend on their order.
GROUPS = {
    "replicas": ("first", "second"),
    "one-crashed": ("first", "crashed"),
    "one-failing": ("first", "failing"),
}
ROUTER_SETTINGS = """\
router_settings:
  routing_strategy: simple-shuffle
  num_retries: 3
  allowed_fails: 1
  cooldown_time: 60
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""
STARTUP_S = 180  # importing the proxy takes 10-20 s of CPU on a busy 2-core machine
INSTALL_HINT = (
    "this test needs the LiteLLM proxy in an environment of its own (its [proxy] extra caps "
    "rich<14 and huggingface_hub<2, which inspect-ai and transformers exceed): "
    "python -m venv ~/litellm-venv && ~/litellm-venv/bin/pip install 'litellm[proxy]==1.108.7' "
    "and RALIGN_LITELLM=~/litellm-venv/bin/litellm"
)


def litellm_command() -> str:
    """The ``litellm`` command: ``$RALIGN_LITELLM``, else on PATH, else beside this Python.
    Without one the tests skip, unless ``RALIGN_REQUIRE_LITELLM`` is set (CI sets it and
    installs the proxy, so a missing one fails there)."""
    named = os.environ.get("RALIGN_LITELLM")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            pytest.fail(f"RALIGN_LITELLM={named} is not a file; {INSTALL_HINT}")
        return str(path)
    beside = str(Path(sys.executable).parent)
    found = shutil.which("litellm") or shutil.which("litellm", path=beside)
    if not found:
        if os.environ.get("RALIGN_REQUIRE_LITELLM"):
            pytest.fail(f"no litellm command found; {INSTALL_HINT}")
        pytest.skip(f"no litellm command found; {INSTALL_HINT}")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def proxy_config(bases: dict[str, str]) -> str:
    """The proxy's config: each group's two deployments under its one model name."""
    lines = ["model_list:"]
    for group, members in GROUPS.items():
        for member in members:
            lines += [
                f"  - model_name: {group}",
                "    litellm_params:",
                "      model: openai/stand-in",
                f"      api_base: {bases[member]}",
                "      api_key: os.environ/STAND_IN_API_KEY",
            ]
    return "\n".join(lines) + "\n" + ROUTER_SETTINGS


@dataclass
class Proxy:
    base_url: str
    key: str
    servers: dict[str, LoopbackServer]
    log: Path


def wait_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-3000:]
            pytest.fail(f"the LiteLLM proxy exited ({process.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    pytest.fail(f"the LiteLLM proxy was not ready in {STARTUP_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    command = litellm_command()
    folder = tmp_path_factory.mktemp("litellm")
    servers = {
        "first": LoopbackServer(stand_in),
        "second": LoopbackServer(stand_in),
        "crashed": LoopbackServer(stand_in),
        "failing": LoopbackServer(lambda body: Reply("replica overloaded", status=503)),
    }
    for server in servers.values():
        server.__enter__()
    # A crashed replica: its port refuses connections from the start.
    servers["crashed"].go_down()
    config = folder / "config.yaml"
    config.write_text(proxy_config({name: s.base_url for name, s in servers.items()}))
    key = "sk-" + secrets.token_hex(24)
    port = free_port()
    env = {
        **os.environ,
        "LITELLM_MASTER_KEY": key,
        "STAND_IN_API_KEY": "stand-in-key",
        # The bundled model cost map (no fetch from the internet at startup).
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    log = folder / "proxy.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [command, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder,
        )  # fmt: skip
    try:
        wait_ready(process, f"http://127.0.0.1:{port}/health/readiness", log)
        yield Proxy(f"http://127.0.0.1:{port}/v1", key, servers, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for name, server in servers.items():
            if name != "crashed":
                server.__exit__(None, None, None)


def run(base_url: str, model: str, out: Path) -> dict:
    """``ralign run helpsteer3 --sample`` with GenRM and meta-judge ``model`` at ``base_url``;
    its results.json. Every run has a cache of its own (a module's, a test's): every request
    is sent."""
    code = main(
        ["run", "helpsteer3", "--sample",
         "--genrm-model", model, "--genrm-base-url", base_url,
         "--metajudge-model", model, "--metajudge-base-url", base_url,
         "--output-dir", str(out)]
    )  # fmt: skip
    assert code == 0
    return json.loads((run_dir(out, "helpsteer3") / "results.json").read_text())


@pytest.fixture(scope="module")
def direct(proxy: Proxy, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same run straight against one stand-in."""
    return run(proxy.servers["first"].base_url, "stand-in", tmp_path_factory.mktemp("direct"))


@pytest.fixture
def through_proxy(proxy: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A run through the proxy under a group's model name, with the proxy's key."""
    monkeypatch.setenv("RALIGN_GENRM_API_KEY", proxy.key)
    monkeypatch.setenv("RALIGN_METAJUDGE_API_KEY", proxy.key)

    def go(group: str) -> tuple[dict, dict[str, int]]:
        """The run's results.json and how many chat requests each stand-in received."""
        before = {name: len(server.requests) for name, server in proxy.servers.items()}
        results = run(proxy.base_url, group, tmp_path / group)
        bodies = {name: s.requests[before[name] :] for name, s in proxy.servers.items()}
        # The deployments are asked for the model of their `openai/<model>` entry.
        assert {body["model"] for got in bodies.values() for body in got} == {"stand-in"}
        return results, {name: len(got) for name, got in bodies.items()}

    return go


def sent(results: dict) -> int:
    """Chat requests the run needed (GenRM and judge)."""
    return sum(results["usage"][role]["requests"] for role in ("genrm", "judge"))


def check_no_failure_seen(results: dict) -> None:
    """Our engine saw every request answered at its first call: no failure, no retry."""
    for role in ("genrm", "judge"):
        usage = results["usage"][role]
        assert usage["failures"] == 0 and usage["failure_reasons"] == {}, role
        assert usage["calls"] == usage["requests"] > 0, role


def test_both_deployments_serve_and_the_numbers_equal_a_direct_run(direct, through_proxy):
    results, served = through_proxy("replicas")
    assert results["metrics"] == direct["metrics"]
    check_no_failure_seen(results)
    # 8 GenRM requests and 4 judge requests, shuffled over both (each on one alone: 2 in 2^12).
    assert sent(results) == sent(direct) == 12
    assert served["first"] > 0 and served["second"] > 0
    assert served["first"] + served["second"] == 12


def test_a_crashed_deployment_is_retried_on_the_other(direct, through_proxy):
    results, served = through_proxy("one-crashed")
    assert results["metrics"] == direct["metrics"]
    check_no_failure_seen(results)
    # Every request answered by the live one; the attempts on the dead port were the router's
    # retries (its x-litellm-attempted-retries header), none of them reached our engine.
    assert served["first"] == sent(results) == 12


def test_a_failing_deployment_is_retried_on_the_other_and_counted(direct, through_proxy):
    results, served = through_proxy("one-failing")
    assert results["metrics"] == direct["metrics"]
    check_no_failure_seen(results)
    assert served["first"] == sent(results) == 12
    # Each 503 the failing stand-in sent was followed by one retry of the router on the other
    # deployment (the router cools the failing one down after its second failure, allowed_fails
    # 1): here the router's retries are counted exactly. It is picked at least once unless the
    # shuffle sends all 12 first picks to the other one (1 in 2^12).
    assert served["failing"] >= 1
