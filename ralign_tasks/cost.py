"""What a run will pay before it runs (``ralign run --dry-run``) and what runs paid
(``ralign cost``, and the cost each run records): requests, tokens and dollars per benchmark and
role, cached answers at zero.

A dry run goes through the run's own steps with the engine in dry mode
(:func:`ralign_tasks.scorers.engine.dry_run`): cached answers are replayed, so the steps after
them (prep steps, the judge) see exactly what the run will ask them; every other request is
listed and counted once, as the run will send it. Where the GenRM's answer is not cached yet,
what the judge will be asked is not known: those requests are bounded by the family's most per
item (:meth:`Protocol.judge_requests_at_most`) and their prompt tokens estimated. Prompt
tokens are counted with the model's tokenizer where it is local or known to tiktoken
(:mod:`ralign_tasks.scorers.tokens`), else estimated; completion tokens are the requests'
``max_tokens`` (an upper bound) or the mean per answered request of finished runs
(``--expect-from``).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ralign_tasks.protocols.base import Protocol
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.engine import DryBatch, NotAsked, dry_run
from ralign_tasks.scorers.errors import UserError
from ralign_tasks.scorers.tokens import TokenCounter, token_counter

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib

PRICES_ENV = "RALIGN_PRICES"
PER = 1_000_000  # prices are per million tokens
# The error a dry run gives a request it did not ask (``NotAsked: dry run: not asked``).
NOT_ASKED = NotAsked.__name__


@dataclass(frozen=True)
class Price:
    """USD per million prompt (``input``) and completion (``output``) tokens, and where the
    price comes from."""

    input: float
    output: float
    source: str
    batch_discount: float = 0.0

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / PER

    def billed(self, usage: Mapping[str, Any]) -> float:
        """What a role's recorded usage cost: its spent tokens, those that came through a
        provider batch at the batch discount (answers replayed from the cache cost nothing)."""
        batched = self.cost(int(usage.get("batch_prompt_tokens") or 0),
                            int(usage.get("batch_completion_tokens") or 0))  # fmt: skip
        spent = self.cost(int(usage["prompt_tokens"]), int(usage["completion_tokens"]))
        return spent - self.batch_discount * batched

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Price:
        return cls(
            float(data["input_per_million"]),
            float(data["output_per_million"]),
            str(data.get("source", "recorded")),
            float(data.get("batch_discount", 0.0)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"input_per_million": self.input, "output_per_million": self.output,
                "batch_discount": self.batch_discount, "source": self.source}  # fmt: skip


@dataclass(frozen=True)
class Prices:
    """The prices of a command: one for every role (``--price-in/--price-out``), else the
    price file's entry of each model."""

    table: Mapping[str, Mapping[str, float]]
    file: str
    flat: Price | None = None

    def of(self, model: str | None) -> Price | None:
        if self.flat is not None:
            return self.flat
        if not model:
            return None
        matches = [name for name in self.table if model == name or model.startswith(name)]
        if not matches:
            return None
        name = max(matches, key=len)
        entry = self.table[name]
        return Price(float(entry["input"]), float(entry["output"]), f"{self.file}: {name}",
                     float(entry.get("batch_discount", 0.0)))  # fmt: skip


def load_prices(
    path: str | None = None, price_in: float | None = None, price_out: float | None = None
) -> Prices:
    """The price file (``path``, else ``RALIGN_PRICES``, else the bundled ``prices.toml``) and
    the flat price the flags give (both or neither)."""
    if (price_in is None) != (price_out is None):
        raise UserError("--price-in and --price-out go together (USD per million tokens)")
    flat = None
    if price_in is not None and price_out is not None:
        if price_in < 0 or price_out < 0:
            raise UserError("--price-in and --price-out must not be negative")
        flat = Price(price_in, price_out, "--price-in/--price-out")
    given = path or os.environ.get(PRICES_ENV) or None
    if given is None:
        text = (resources.files("ralign_tasks") / "prices.toml").read_text(encoding="utf-8")
        return Prices(_price_table(text, "prices.toml"), "bundled prices.toml", flat)
    file = Path(given).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"price file {file}: cannot read it ({exc})") from None
    return Prices(_price_table(text, str(file)), str(file), flat)


def _price_table(text: str, where: str) -> dict[str, dict[str, float]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"price file {where}: not TOML ({exc})") from None
    models = data.get("models")
    if not isinstance(models, dict):
        raise UserError(f'price file {where}: needs [models."<name>"] tables')
    for name, entry in models.items():
        ok = isinstance(entry, dict) and all(
            isinstance(entry.get(key), (int, float)) and not isinstance(entry.get(key), bool)
            and entry[key] >= 0
            for key in ("input", "output")
        )  # fmt: skip
        if not ok:
            raise UserError(
                f"price file {where}: model {name!r} needs input and output prices (USD per "
                "million tokens, not negative)"
            )
    return models


@dataclass
class RoleBill:
    """What one role of one benchmark will pay: requests known to be sent, more that may be
    (``bound``: what the judge is asked about answers the GenRM has not given yet), the
    requests served from the cache, and the tokens and cost of the sent and the bounded."""

    benchmark: str
    role: str
    model: str
    requests: int = 0
    bound: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    prompt_exact: bool = True
    completion_tokens: int = 0
    completion_basis: str = "max_tokens"
    cost: float | None = None
    max_tokens: int = 0  # of its requests: the completion tokens' bound
    batched: bool = False  # priced at the provider's batch discount

    @property
    def to_pay(self) -> int:
        return self.requests + self.bound


def usage_key(protocol: Protocol[Any, Any, Any], description: str) -> str:
    """The role a batch counts for, as ``results.json``'s usage names it."""
    if description.startswith("GenRM"):
        return "genrm"
    if description == protocol.judge_step.replace("_", "-"):
        return "judge"
    return description.replace("-", "_")


def _results_files(paths: Sequence[str], where: str) -> list[Path]:
    """The ``results.json`` of the run folders given or below the folders given (an error
    naming ``where`` when a path holds none)."""
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        found = [path] if path.is_file() else sorted(path.rglob("results.json"))
        if not found:
            raise UserError(f"{where}{given}: no ralign run folder (results.json) there")
        files += found
    return files


def expected_completions(paths: Sequence[str]) -> dict[str, float]:
    """Mean completion tokens per answered request, by role, of finished run folders."""
    from ralign_tasks.pipeline import read_run_results

    totals: dict[str, list[float]] = {}
    for file in _results_files(paths, "--expect-from "):
        usage = read_run_results(file).get("usage") or {}
        for role, stats in usage.items():
            if not isinstance(stats, Mapping):
                continue
            answered = int(stats.get("requests") or 0) - int(stats.get("failures") or 0)
            tokens = int(stats.get("completion_tokens") or 0) + int(
                stats.get("cached_completion_tokens") or 0
            )
            if answered > 0:
                found = totals.setdefault(role, [0.0, 0.0])
                found[0] += tokens
                found[1] += answered
    return {role: tokens / answered for role, (tokens, answered) in totals.items()}


def plan_bills(
    benchmark: str,
    protocol: Protocol[Any, Any, Any],
    options: Mapping[str, Any],
    score_all: Callable[[], Any],
    endpoints: Mapping[str, EndpointConfig],
    prices: Prices,
    expected: Mapping[str, float],
) -> list[RoleBill]:
    """Run ``score_all()`` (a run's scoring of all its items) in dry mode and bill each role
    (``endpoints``: the run's, by usage key)."""
    with dry_run() as batches:
        scored = score_all()
    unanswered = sum(
        any((error or "").startswith(NOT_ASKED) for error in protocol.request_errors(item.item)[
            "GenRM"])
        for item in scored.items
    )  # fmt: skip
    bills: dict[str, RoleBill] = {}
    counters: dict[str, TokenCounter] = {}
    genrm_tokens: list[int] = []
    for batch in batches:
        role = usage_key(protocol, batch.description)
        bill = bills.setdefault(role, RoleBill(benchmark, role, str(batch.config.model),
                                               max_tokens=batch.config.max_tokens))  # fmt: skip
        _add_batch(bill, batch, counters, expected, genrm_tokens if role == "genrm" else None)
    # What the judge's steps will be asked about the answers still to come, at most: each
    # such request is estimated as long as those known, else as the GenRM's prompt and answer.
    most = protocol.judge_requests_at_most(options) if unanswered else {}
    mean_genrm = sum(genrm_tokens) / len(genrm_tokens) if genrm_tokens else 0.0
    genrm = endpoints.get("genrm")
    genrm_answer = expected.get("genrm", genrm.max_tokens if genrm else 0)
    for role, per_item in most.items():
        config = endpoints.get(role)
        if not per_item or config is None:
            continue  # the run sends that step nothing (no judge)
        bill = bills.setdefault(role, RoleBill(benchmark, role, str(config.model),
                                               max_tokens=config.max_tokens))  # fmt: skip
        known = bill.prompt_tokens / bill.requests if bill.requests else None
        per_request = known if known is not None else mean_genrm + genrm_answer
        bound = per_item * unanswered
        bill.bound += bound
        bill.prompt_tokens += math.ceil(per_request * bound)
        bill.prompt_exact = False
        _add_completions(bill, expected, bound)
    for bill in bills.values():
        price = prices.of(bill.model)
        if price is not None:
            bill.cost = price.cost(bill.prompt_tokens, bill.completion_tokens)
            config = endpoints.get(bill.role)
            if config is not None and config.batch:  # what is still to pay goes in a batch
                bill.cost *= 1 - price.batch_discount
                bill.batched = True
    return list(bills.values())


def _add_batch(
    bill: RoleBill,
    batch: DryBatch,
    counters: dict[str, TokenCounter],
    expected: Mapping[str, float],
    genrm_tokens: list[int] | None,
) -> None:
    config = batch.config
    key = f"{config.backend} {config.model}"
    if key not in counters:
        counters[key] = token_counter(config)
    counter = counters[key]
    bill.cached += batch.cached
    bill.requests += len(batch.unasked)
    bill.prompt_exact &= counter.exact
    bill.max_tokens = config.max_tokens
    for request in batch.unasked:
        tokens = counter.count(request.messages)
        bill.prompt_tokens += tokens
        if genrm_tokens is not None:
            genrm_tokens.append(tokens)
    _add_completions(bill, expected, len(batch.unasked))


def _add_completions(bill: RoleBill, expected: Mapping[str, float], requests: int) -> None:
    """The completion tokens of more requests of a role: the mean of finished runs where
    given, else each request's ``max_tokens``."""
    if bill.role in expected:
        bill.completion_basis = "finished runs"
    bill.completion_tokens += math.ceil(expected.get(bill.role, bill.max_tokens) * requests)


def format_bills(bills: Sequence[RoleBill]) -> str:
    """The dry run's table: per benchmark and role, what is still to pay."""
    header = ("benchmark", "role", "model", "to pay", "cached", "prompt tokens",
              "completion tokens", "cost (USD)")  # fmt: skip
    rows = []
    for bill in bills:
        bound = f" (≤ {bill.to_pay})" if bill.bound else ""
        rows.append((
            bill.benchmark, bill.role, bill.model, f"{bill.requests}{bound}", str(bill.cached),
            ("" if bill.prompt_exact or not bill.prompt_tokens else "~")
            + f"{bill.prompt_tokens:,}",
            ("" if not bill.completion_tokens else "≤ " if bill.completion_basis == "max_tokens"
             else "~") + f"{bill.completion_tokens:,}",
            "n/a" if bill.cost is None else f"{bill.cost:,.4f}" + (" (batch)" if bill.batched
                                                                   else ""),
        ))  # fmt: skip
    return _plain_table(header, rows)


def _plain_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, the header underlined."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [header, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


# The settings key naming each role's model in a run folder's results.json.
_ROLE_MODELS = {"genrm": "genrm_model", "judge": "meta_judge_model",
                "extract": "extractor_model", "reason_types": "meta_judge_model"}  # fmt: skip


@dataclass(frozen=True)
class PaidRole:
    """What one role of a finished run paid."""

    run: str
    role: str
    model: str
    requests: int
    cache_hits: int
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    priced_by: str


def paid_roles(paths: Sequence[str], prices: Prices | None) -> list[PaidRole]:
    """Each role of each run folder under ``paths``: its recorded usage, and its cost at
    ``prices`` (``None``: the cost the run recorded, else the bundled prices)."""
    from ralign_tasks.pipeline import is_run_results, read_run_results

    fallback = load_prices()
    rows = []
    for file in _results_files(paths, ""):
        data = read_run_results(file)
        if not is_run_results(data):
            raise UserError(f"{file}: not the results.json of a ralign run folder")
        settings = data.get("settings") or {}
        for role, stats in (data.get("usage") or {}).items():
            if not isinstance(stats, Mapping):
                continue
            model = str(settings.get(_ROLE_MODELS.get(role, ""), "") or data["genrm"])
            prompt, completion = int(stats["prompt_tokens"]), int(stats["completion_tokens"])
            price = prices.of(model) if prices is not None else None
            if price is not None:
                cost, by = price.billed(stats), price.source
            elif prices is None and stats.get("cost_usd") is not None:
                recorded = (settings.get("prices") or {}).get(role) or {}
                cost, by = float(stats["cost_usd"]), str(recorded.get("source", "recorded"))
            else:
                price = fallback.of(model) if prices is None else None
                cost = price.billed(stats) if price else None
                by = price.source if price else "no price"
            rows.append(PaidRole(
                str(file.parent), role, model, int(stats["requests"]),
                int(stats["cache_hits"]), int(stats["calls"]), prompt, completion, cost, by,
            ))  # fmt: skip
    return rows


def format_paid(rows: Sequence[PaidRole]) -> str:
    header = ("run", "role", "model", "requests", "from cache", "calls", "prompt tokens",
              "completion tokens", "cost (USD)", "priced by")  # fmt: skip
    cells = [
        (row.run, row.role, row.model, str(row.requests), str(row.cache_hits), str(row.calls),
         f"{row.prompt_tokens:,}", f"{row.completion_tokens:,}",
         "n/a" if row.cost is None else f"{row.cost:,.4f}", row.priced_by)
        for row in rows
    ]  # fmt: skip
    text = _plain_table(header, cells)
    known = [row.cost for row in rows if row.cost is not None]
    total = f"total: {sum(known):,.4f} USD" + (
        " (and roles without a price)" if len(known) < len(rows) else ""
    )
    return f"{text}\n{total}"
