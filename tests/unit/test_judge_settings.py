"""Every judge setting has one spelling and one default in every path: the CLI
(``--metajudge-<key>``), the environment (``RALIGN_METAJUDGE_<KEY>``), lm-eval's metadata
(``metajudge_<key>``) and Inspect (``-T metajudge_<key>``, or Inspect's own syntax where the
setting says so: the ``meta_judge`` role's model, endpoint, key, concurrency, backend)."""

from __future__ import annotations

import argparse
import inspect as signatures
import logging

import pytest
from inspect_ai._eval.registry import task_create
from inspect_ai._util.registry import registry_info, registry_params

from ralign_tasks.cli.parser import build_parser
from ralign_tasks.cli.runs import _judge_config
from ralign_tasks.inspect_adapter.compat import PrerequisiteError
from ralign_tasks.inspect_adapter.scorer import SCORERS, inspect_aliases, inspect_judge
from ralign_tasks.inspect_adapter.tasks import TASK_FUNCTIONS
from ralign_tasks.judge import JUDGE_SETTINGS, resolve_judge
from ralign_tasks.lm_eval_adapter.tasks import judge_config
from ralign_tasks.protocols import PROTOCOLS, get_task
from ralign_tasks.scorers import config as endpoint_config
from ralign_tasks.scorers.config import ConfigError, EndpointConfig
from ralign_tasks.scorers.settings import Setting

JUDGED = [p for p in PROTOCOLS if p.uses_judge]
JUDGE_COMMANDS = ("run", "score", "rc-score", "rejudge")
# A value other than the default for each kind of setting, as text (how the CLI, the
# environment and lm-eval's --metadata give it) and as the resolved value.
STRINGS = {
    "model": "judge-x",
    "base_url": "http://127.0.0.1:9/v1",
    "api_key": "sk-test",
    "backend": "vllm",
    "cache_dir": "/tmp/judge-cache",
    "dtype": "float16",
    "device_map": "cpu",
    "batch": "anthropic",
    "batch_failed": "count",
}


def other(setting: Setting) -> tuple[str, object]:
    if setting.kind == "bool":
        return ("false", False) if setting.default else ("true", True)
    if setting.kind == "int":
        value = (setting.default or 1) + 1
        return str(value), value
    if setting.kind == "float":
        value = (setting.default or 0.5) + 0.25
        return str(value), value
    value = f"/templates/{setting.key}.jinja" if setting.template else STRINGS[setting.key]
    return value, value


def ids(setting: Setting) -> str:
    return setting.key


@pytest.fixture(autouse=True)
def defaults_only(monkeypatch):
    """No RALIGN_METAJUDGE_* of the test run (conftest shortens the retry budget): each
    setting's default is its own."""
    monkeypatch.delenv("RALIGN_METAJUDGE_RETRY_BUDGET", raising=False)
    budget = next(s for s in JUDGE_SETTINGS if s.key == "retry_budget").default
    monkeypatch.setattr(endpoint_config, "DEFAULT_RETRY_BUDGET_S", budget)


def cli_judge(*flags: str, command: str = "score"):
    """The judge the CLI resolves from ``flags`` (parsed, not run)."""
    base = {
        "run": ["run", "helpsteer3"],
        "score": ["score", "helpsteer3", "--outputs", "o.jsonl"],
        "rc-score": ["rc-score", "--outputs", "o.jsonl"],
        "rejudge": ["rejudge", "runs"],
    }[command]
    args = build_parser().parse_args([*base, *flags])
    task = "helpsteer3_atomic" if command == "rc-score" else "helpsteer3"
    return _judge_config(args, [get_task(task)])


def options_of(command: str) -> set[str]:
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return {
        option for action in commands.choices[command]._actions for option in action.option_strings
    }


def inspect_task(protocol, **params):
    """An Inspect task built as ``inspect eval … -T name=value`` builds it (no model runs)."""
    function = TASK_FUNCTIONS[protocol.tasks[0].task]
    return task_create(registry_info(function).name, sample=True, **params)


def test_every_transport_field_and_every_family_template_is_a_setting():
    keys = [s.key for s in JUDGE_SETTINGS]
    templates = [p.judge_template_setting for p in JUDGED]
    assert keys == [*EndpointConfig.names(), *templates]
    assert {"template", "rc_template", "cache", "max_attempts"} <= set(keys)


@pytest.mark.parametrize("setting", JUDGE_SETTINGS, ids=ids)
def test_the_default_is_the_same_in_every_path(setting):
    assert resolve_judge({}).value(setting.key) == setting.default
    if setting.key == "model":  # none: the CLI and lm-eval refuse to run without one
        with pytest.raises(ConfigError, match="no meta-judge"):
            judge_config({})
        with pytest.raises(ConfigError, match="no meta-judge"):
            cli_judge()
    else:
        assert judge_config({"metajudge_model": "m"}).value(setting.key) == setting.default
        assert cli_judge("--metajudge-model", "m").value(setting.key) == setting.default
    for protocol in JUDGED:
        parameters = signatures.signature(TASK_FUNCTIONS[protocol.tasks[0].task]).parameters
        scorer = signatures.signature(SCORERS[protocol.scorer_name]).parameters
        if setting.name in parameters:
            assert parameters[setting.name].default == setting.default
            assert scorer[setting.name].default == setting.default
            assert inspect_judge(protocol, {}).value(setting.key) == setting.default


@pytest.mark.parametrize("setting", JUDGE_SETTINGS, ids=ids)
def test_the_cli_takes_the_setting_as_metajudge_key_on_every_judge_command(setting):
    text, value = other(setting)
    for command in JUDGE_COMMANDS:
        # A secret never goes on a command line: the environment only.
        assert (setting.flag in options_of(command)) is not setting.secret, command
    if setting.secret:
        return
    flags = [f"--no-{setting.flag[2:]}"] if setting.kind == "bool" else [setting.flag, text]
    model = [] if setting.key == "model" else ["--metajudge-model", "m"]
    assert cli_judge(*model, *flags).value(setting.key) == value


@pytest.mark.parametrize("setting", JUDGE_SETTINGS, ids=ids)
def test_the_environment_sets_it_in_every_path(setting, monkeypatch):
    text, value = other(setting)
    if setting.key != "model":
        monkeypatch.setenv("RALIGN_METAJUDGE_MODEL", "m")
    monkeypatch.setenv(setting.env, text)
    assert resolve_judge({}).value(setting.key) == value
    assert judge_config({}).value(setting.key) == value
    assert cli_judge().value(setting.key) == value
    for protocol in JUDGED:
        if setting.name in signatures.signature(SCORERS[protocol.scorer_name]).parameters:
            assert inspect_judge(protocol, {}).value(setting.key) == value


@pytest.mark.parametrize("setting", JUDGE_SETTINGS, ids=ids)
def test_lm_eval_takes_it_as_metajudge_key(setting):
    text, value = other(setting)
    model = {} if setting.key == "model" else {"metajudge_model": "m"}
    if setting.secret:  # lm-eval writes the metadata into its results file
        with pytest.raises(ConfigError, match="not in --metadata"):
            judge_config({**model, setting.name: text})
        return
    assert judge_config({**model, setting.name: text}).value(setting.key) == value


@pytest.mark.parametrize("setting", JUDGE_SETTINGS, ids=ids)
def test_inspect_takes_it_as_t_metajudge_key_or_by_its_own_syntax(setting, tmp_path):
    """Where Inspect has no syntax of its own, ``-T metajudge_<key>`` (a family's judge template
    on that family's tasks); otherwise the setting names Inspect's syntax (the role's), and
    ``-T metajudge_<key>`` is an error saying so, never a silently ignored parameter."""
    text, value = other(setting)
    if setting.template:  # the task compiles it before it starts
        value = str(tmp_path / "judge.jinja")
        (tmp_path / "judge.jinja").write_text("J", encoding="utf-8")
    for protocol in JUDGED:
        parameters = signatures.signature(TASK_FUNCTIONS[protocol.tasks[0].task]).parameters
        if setting.inspect is not None:
            assert setting.name not in parameters
            assert "role" in setting.inspect or "Inspect" in setting.inspect
            with pytest.raises(PrerequisiteError, match="not a task parameter in Inspect"):
                inspect_task(protocol, **{setting.name: text})
            continue
        if setting.template and setting.key != protocol.judge_template_setting:
            # Another family's template (or, by its earlier name, this family's own).
            assert setting.name not in parameters or setting.name in inspect_aliases(protocol)
            continue
        task = inspect_task(protocol, **{setting.name: value})
        (scorer,) = task.scorer
        assert registry_params(scorer)[setting.name] == value
        assert inspect_judge(protocol, {setting.name: value}).value(setting.key) == value


def test_inspect_takes_the_family_template_from_its_environment_variable(monkeypatch, tmp_path):
    for protocol in JUDGED:
        setting = next(s for s in JUDGE_SETTINGS if s.key == protocol.judge_template_setting)
        template = tmp_path / f"{setting.key}.jinja"
        template.write_text("J", encoding="utf-8")
        monkeypatch.setenv(setting.env, str(template))
        (scorer,) = inspect_task(protocol).scorer
        assert registry_params(scorer)[setting.name] == str(template)


def test_earlier_names_warn_and_still_work(monkeypatch, caplog):
    caplog.set_level(logging.WARNING)
    assert (
        judge_config({"metajudge_model": "m", "metajudge_use_cache": False}).value("cache") is False
    )
    monkeypatch.setenv("RALIGN_METAJUDGE_USE_CACHE", "false")
    assert resolve_judge({}).value("cache") is False
    monkeypatch.delenv("RALIGN_METAJUDGE_USE_CACHE")
    rationale = next(p for p in JUDGED if p.judge_template_setting != "template")
    fidelity = next(p for p in JUDGED if p.judge_template_setting == "template")
    assert inspect_judge(fidelity, {"metajudge_attempts": 5}).value("max_attempts") == 5
    assert inspect_judge(rationale, {"metajudge_template": "/t.jinja"}).value("rc_template") == (
        "/t.jinja"
    )
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [
        "metajudge_use_cache is now metajudge_cache, its name in every path",
        "RALIGN_METAJUDGE_USE_CACHE is now RALIGN_METAJUDGE_CACHE",
        "metajudge_attempts is now metajudge_max_attempts, its name in every path",
        "metajudge_template is now metajudge_rc_template, its name in every path",
        "Rationale Consistency takes metajudge_template as its judge template; in an eval with "
        "R-Align tasks, whose judge template that is, pass this one as metajudge_rc_template",
    ]


def test_an_unknown_setting_is_a_clear_error_in_every_path(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["score", "helpsteer3", "--outputs", "o", "--metajudge-tmp", "1"])
    assert "unrecognized arguments: --metajudge-tmp" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown meta-judge setting 'metajudge_tmp'"):
        judge_config({"metajudge_model": "m", "metajudge_tmp": 1})
    for protocol in JUDGED:
        with pytest.raises(PrerequisiteError, match="unknown meta-judge setting 'metajudge_tmp'"):
            inspect_task(protocol, metajudge_tmp=1)


def test_none_switches_the_judge_off_in_every_path(monkeypatch):
    assert cli_judge("--no-metajudge") is None
    assert judge_config({"metajudge": "none"}) is None
    for protocol in JUDGED:
        assert inspect_judge(protocol, {"metajudge": "none"}) is None
        task = inspect_task(protocol, metajudge="none")
        assert task.setup is None  # no meta_judge role needed
        assert registry_params(task.scorer[0])["metajudge"] == "none"
    monkeypatch.setenv("RALIGN_METAJUDGE", "none")
    assert cli_judge("--metajudge-model", "m") is None
    assert judge_config({"metajudge_model": "m"}) is None
    for protocol in JUDGED:
        assert inspect_judge(protocol, {}) is None
        assert inspect_task(protocol).setup is None


def test_judge_order_is_a_family_option_spelled_alike_in_every_path():
    """The meta-judge position probe is R-Align fidelity's option ``judge_order``, not a judge
    setting: ``--judge-order``, ``judge_order`` in lm-eval's metadata, ``-T judge_order``."""
    (protocol,) = [p for p in PROTOCOLS if any(o.name == "judge_order" for o in p.options)]
    option = next(o for o in protocol.options if o.name == "judge_order")
    spec = protocol.tasks[0]
    args = build_parser().parse_args(["run", spec.short, "--judge-order", "genrm_first"])
    assert args.judge_order == "genrm_first"
    assert protocol.option_values({}, spec.task)["judge_order"] == option.default
    parameters = signatures.signature(TASK_FUNCTIONS[spec.task]).parameters
    assert parameters["judge_order"].default == option.default


def test_inspect_reads_only_the_settings_it_takes_from_the_environment(monkeypatch):
    # The endpoint, key and concurrency are Inspect's model role's: a malformed value meant for
    # the CLI stops the CLI, not an Inspect run.
    fidelity = next(p for p in JUDGED if p.judge_template_setting == "template")
    monkeypatch.setenv("RALIGN_METAJUDGE_CONCURRENCY", "many")
    monkeypatch.setenv("RALIGN_METAJUDGE_BASE_URL", "http://user:secret@judge.example/v1")
    monkeypatch.setenv("RALIGN_METAJUDGE_MAX_TOKENS", "77")
    assert inspect_judge(fidelity, {}).value("max_tokens") == 77
    with pytest.raises(ConfigError):
        resolve_judge({})
