"""The layout is the architecture: imports go one way (adapters and app → core → scorers), the
harnesses are imported only by their adapters, every directly imported package is declared, and
the lm-eval YAMLs list exactly their protocol's schema."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import tomllib
import yaml

from ralign_tasks.protocols import PROTOCOLS, TASKS, protocol_of
from ralign_tasks.protocols.fidelity import FIDELITY
from ralign_tasks.task_configs import include_path

ROOT = Path(__file__).resolve().parents[2]
# Source folder -> installed package name.
PACKAGES = {ROOT / "ralign_tasks": "ralign_tasks", ROOT / "scorers": "ralign_tasks.scorers"}
ADAPTERS = ("ralign_tasks.lm_eval_adapter", "ralign_tasks.inspect_adapter")
APP = ("ralign_tasks.cli", "ralign_tasks.report", "ralign_tasks.testing")
HARNESSES = ("lm_eval", "inspect_ai")


def modules() -> dict[str, Path]:
    """Every module of the package by its installed name."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[0] == "task_configs" or (package == "ralign_tasks" and parts[0] == "scorers"):
                continue
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def imports(path: Path) -> set[str]:
    """The absolute module names a file imports (at any depth: lazy imports count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = modules()


def test_the_walk_finds_the_layout():
    for name in ("ralign_tasks.protocols.base", "ralign_tasks.scorers.ask",
                 "ralign_tasks.inspect_adapter.scorer", "ralign_tasks.cli.main"):  # fmt: skip
        assert name in MODULES


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_the_adapters_import_a_harness(name):
    if within(name, ADAPTERS):
        return
    harness = [m for m in imports(MODULES[name]) if within(m, HARNESSES)]
    assert not harness, f"{name} imports {harness}: harness code belongs in an adapter folder"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_one_way(name):
    """scorers/ (harness-free scoring) imports nothing else of the package; the core
    (protocols, data, records, prompts, the pipeline) imports neither the adapters nor the
    app; the adapters do not import the app."""
    ours = {m for m in imports(MODULES[name]) if within(m, ("ralign_tasks",))}
    if within(name, ("ralign_tasks.scorers",)):
        allowed: tuple[str, ...] = ("ralign_tasks.scorers",)
        wrong = [m for m in ours if not within(m, allowed)]
    elif within(name, ADAPTERS):
        wrong = [m for m in ours if within(m, APP)]
    elif within(name, APP):
        wrong = []
    else:
        wrong = [m for m in ours if within(m, ADAPTERS + APP)]
    assert not wrong, f"{name} imports {wrong} against the direction of the layers"


# A family's own modules: protocols/<family>.py (and label.py, what the label families share)
# and scorers/<family>.py.
FAMILY_MODULES = {
    name for name in MODULES
    if within(name, ("ralign_tasks.protocols",))
    and name not in ("ralign_tasks.protocols", "ralign_tasks.protocols.base")
}  # fmt: skip
FAMILY_MODULES |= {
    scorer for name in FAMILY_MODULES
    if (scorer := "ralign_tasks.scorers." + name.rsplit(".", 1)[1]) in MODULES
}  # fmt: skip


def test_the_family_modules_are_found():
    expected = {"ralign_tasks.protocols.fidelity", "ralign_tasks.protocols.label",
                "ralign_tasks.scorers.rationale", "ralign_tasks.scorers.judgebench"}  # fmt: skip
    assert expected <= FAMILY_MODULES


@pytest.mark.parametrize(
    "name", sorted(n for n in MODULES if n not in FAMILY_MODULES and n != "ralign_tasks.protocols")
)
def test_only_the_registry_names_a_family(name):
    """A family is in its own modules: the adapters, the CLI, the report, the viewer and the
    shared core iterate over what each protocol declares, and only the registry
    (``protocols/__init__.py``) imports a family's modules."""
    wrong = sorted(m for m in imports(MODULES[name]) if m in FAMILY_MODULES)
    assert not wrong, f"{name} imports {wrong}: declare what it needs on the Protocol"


def test_every_directly_imported_package_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {requirement for requirement in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared.update(extra)
    declared_names = {
        r.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower()
        for r in declared
    }
    distributions = packages_distributions()
    missing = set()
    for name, path in MODULES.items():
        for module in imports(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top == "ralign_tasks":
                continue
            owners = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
            if not owners & {n.replace("_", "-") for n in declared_names}:
                missing.add(f"{top} (in {name})")
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def yaml_tasks() -> dict[str, dict]:
    """Each task YAML merged with the template it includes (lm-eval's ``include:``)."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: f"!function {node.value}")

    def load(path: Path) -> dict:
        config = yaml.load(path.read_text(), Loader=Loader)
        if "include" in config:  # as lm-eval resolves it: recursively, local keys winning
            config = {**load(path.parent / config.pop("include")), **config}
        return config

    configs = {}
    for path in include_path().glob("*.yaml"):
        config = load(path)
        if "task" in config and isinstance(config["task"], str):
            configs[config["task"]] = config
    return configs


def test_every_task_yaml_includes_the_shared_template():
    """The class, hooks and data settings are in ``_ralign_common_yaml``, once."""
    for path in include_path().glob("*.yaml"):
        config = yaml.safe_load(path.read_text().replace("!function", ""))
        if "group" in config:
            continue
        chain = []
        while "include" in config:
            chain.append(config["include"])
            config = yaml.safe_load((path.parent / chain[-1]).read_text().replace("!function", ""))
        assert chain and chain[-1] == "_ralign_common_yaml", path.name
        assert "class" not in yaml.safe_load(path.read_text().replace("!function", "")), path.name


def test_every_task_has_a_yaml_whose_metric_list_is_its_schema():
    configs = yaml_tasks()
    assert set(configs) == set(TASKS)
    for task, config in configs.items():
        schema = protocol_of(task).schema
        listed = [
            (m["metric"], m["aggregation"], m["higher_is_better"]) for m in config["metric_list"]
        ]
        expected = [
            (
                spec.name,
                f"!function ralign_tasks.lm_eval_adapter.tasks.{spec.aggregation}"
                if spec.aggregation in ("count", "summary")
                else spec.aggregation,
                spec.higher_is_better,
            )
            for spec in schema
        ]
        assert listed == expected, task
        assert config["dataset_kwargs"] == {"ralign_task": task}
        assert config["class"] == "!function ralign_tasks.lm_eval_adapter.tasks.RalignTask"


def test_every_family_is_one_definition():
    """What the adapters need of a family is on its protocol: names are unique, each task has
    its family's scorer, and each schema's headline is one of its metrics."""
    assert (
        len({p.name for p in PROTOCOLS})
        == len({p.scorer_name for p in PROTOCOLS})
        == len(PROTOCOLS)
    )
    for spec in TASKS.values():
        protocol = protocol_of(spec)
        assert spec in protocol.tasks
        assert protocol.schema.headline in protocol.schema.metric_names


def test_no_test_module_imports_another():
    """Shared helpers live in tests/support; fixtures are registered once (conftest.py)."""
    for path in (ROOT / "tests").rglob("test_*.py"):
        wrong = [m for m in imports(path) if m.startswith("tests.") and "test_" in m]
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_the_command_line_imports_no_heavy_module_until_it_needs_one():
    """`ralign --help` (and every command's start) stays quick: the HTTP client, numpy and
    package metadata load when used. Checked by what a fresh interpreter has loaded."""
    heavy = ("aiohttp", "openai", "numpy._core", "scipy", "importlib.metadata", "lm_eval",
             "inspect_ai", "torch")  # fmt: skip
    probe = f"import sys, ralign_tasks.cli.main; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    assert loaded == "[]"


def test_each_family_of_judged_tasks_is_a_group_of_its_own():
    texts = [path.read_text() for path in include_path().glob("*.yaml")]
    configs = [yaml.safe_load(text) for text in texts if text.count("\ngroup:")]
    groups = {config["group"]: config["task"] for config in configs}
    # HelpSteer3-Atomic's metrics are none of the R-Align group's: a group of its own, so that
    # neither reports the other's metrics as missing.
    assert groups == {
        "ralign": [spec.task for spec in FIDELITY.tasks],
        "ralign_atomic": ["ralign_helpsteer3_atomic"],
        "ralign_label": ["ralign_judgebench", "ralign_rmbench", "ralign_rb2"],
    }
