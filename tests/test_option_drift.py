"""The clients and the docs say what the option definitions say (fast, no model).

One definition per option set — :class:`lsp_server.settings.Settings`,
:class:`training.config.TrainConfig`, :class:`training.config.EvalConfig` — and these tests
fail when a view kept by hand (VS Code ``package.json`` and ``constants.ts``) or a generated one
(README, docs/training.md, the Neovim config and help: ``scripts/option_docs.py --write``)
disagrees with it on names, defaults, enum values or limits.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from lsp_server.settings import SETTINGS
from training.config import EvalConfig, TrainConfig
from training.job import EVAL_OPTIONS, TRAIN_OPTIONS, option_flags
from training.options import Option, camel, options

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("option_docs", ROOT / "scripts" / "option_docs.py")
assert _spec and _spec.loader
option_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(option_docs)

PACKAGE = ROOT / "clients" / "vscode" / "package.json"
CONSTANTS = ROOT / "clients" / "vscode" / "src" / "constants.ts"
LUA_CONFIG = ROOT / "clients" / "neovim" / "lua" / "codellama" / "config.lua"
PREFIX = "codellama."

# What the server's commands accepted before the tables were derived: every one must keep working.
FINETUNE_BEFORE = {
    "maxSteps", "maxMinutes", "epochs", "contextLen", "batchSize", "gradAccum", "lr", "loraR",
    "loraAlpha", "fimRate", "valFraction", "seed", "maxHoles", "evalMaxNewTokens",
    "evalMaxMinutes", "lossChunkTokens", "gateMetric", "gateTolerance", "checkpointEvery",
    "device", "dtype", "evaluate",
}  # fmt: skip
EVALUATE_BEFORE = {"adapter", "maxHoles", "maxMinutes", "maxNewTokens", "seed"}


def _properties(pkg: dict[str, Any] | None = None) -> dict[str, Any]:
    pkg = pkg if pkg is not None else json.loads(PACKAGE.read_text(encoding="utf-8"))
    props: dict[str, Any] = pkg["contributes"]["configuration"]["properties"]
    return props


def _ts_list(name: str) -> list[str]:
    """The string items of ``export const NAME = [ ... ]`` in constants.ts."""
    text = CONSTANTS.read_text(encoding="utf-8")
    match = re.search(rf"export const {name} = \[(.*?)\]", text, re.S)
    assert match, f"{name} not found in {CONSTANTS.name}"
    return re.findall(r"'([^']+)'", match.group(1))


def _json_kind(opt: Option) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string"}[opt.kind]


def _json_type(opt: Option) -> Any:
    return [_json_kind(opt), "null"] if opt.optional else _json_kind(opt)


def setting_problems(props: dict[str, Any]) -> list[str]:
    """How package.json's server settings differ from :class:`Settings` (empty: they agree)."""
    problems = []
    for opt in SETTINGS:
        key = PREFIX + camel(opt.name)
        prop = props.get(key)
        if prop is None:
            problems.append(f"{key}: missing")
            continue
        expected = {
            "type": _json_type(opt),
            "default": opt.default,
            "enum": list(opt.literal) or None,
            "minimum": opt.spec.minimum,
            "maximum": opt.spec.maximum,
        }
        problems += _differences(key, prop, expected)
    return problems


def _differences(key: str, prop: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """One line per JSON-schema field of ``prop`` that is not what the definition says."""
    return [
        f"{key}: {field} is {prop.get(field)!r}, the definition says {want!r}"
        for field, want in expected.items()
        if prop.get(field) != want
    ]


def finetune_problems(props: dict[str, Any]) -> list[str]:
    """How the ``codellama.finetune.*`` client settings differ from the fine-tune options."""
    problems = []
    by_name = {name: o.option for name, o in TRAIN_OPTIONS.items()}
    for key, prop in props.items():
        if not key.startswith(PREFIX + "finetune."):
            continue
        name = key.removeprefix(PREFIX + "finetune.")
        if name == "extraOptions":
            examples = re.findall(r'"(\w+)":', prop["markdownDescription"])
            problems += [f"{key}: example {e!r} is no option" for e in examples if e not in by_name]
            continue
        opt = by_name.get(name)
        if opt is None:
            problems.append(f"{key}: codellama.finetune has no option {name!r}")
            continue
        expected = {
            "type": [_json_kind(opt), "null"],  # null: the server's default
            "minimum": opt.spec.minimum,
            "exclusiveMinimum": opt.spec.above,
        }
        problems += _differences(key, prop, expected)
    return problems


def test_generated_blocks_are_up_to_date() -> None:
    assert option_docs.stale() == [], "run: .venv/bin/python scripts/option_docs.py --write"


def test_package_json_server_settings_match_the_settings_definition() -> None:
    assert setting_problems(_properties()) == []


def test_package_json_has_no_setting_the_server_or_extension_does_not_read() -> None:
    client = set(_ts_list("CLIENT_SETTINGS"))
    server = {camel(o.name) for o in SETTINGS}
    for key in _properties():
        name = key.removeprefix(PREFIX)
        assert name in server or name.split(".")[0] in client or name == "trace.server", key
    for name in client:
        assert any(k.removeprefix(PREFIX).split(".")[0] == name for k in _properties()), name


def test_package_json_finetune_settings_are_finetune_options() -> None:
    assert finetune_problems(_properties()) == []


def test_constants_ts_lists_exactly_the_server_settings_in_order() -> None:
    assert _ts_list("SERVER_SETTINGS") == [camel(o.name) for o in SETTINGS]


def test_lua_config_annotates_every_setting_with_its_type_and_default() -> None:
    fields = re.findall(
        r"^---@field (\w+)\? (\S+) .*\(default: ([^)]*)\)$",
        LUA_CONFIG.read_text(encoding="utf-8"),
        re.M,
    )
    assert [name for name, _, _ in fields] == [camel(o.name) for o in SETTINGS]
    for opt, (_, typ, default) in zip(SETTINGS, fields, strict=True):
        assert default == option_docs.lua_default(opt)
        if opt.literal:
            assert typ == "|".join(f"'{v}'" for v in opt.literal)


def test_the_server_commands_keep_every_option_they_took() -> None:
    assert set(TRAIN_OPTIONS) == FINETUNE_BEFORE
    assert set(EVAL_OPTIONS) == EVALUATE_BEFORE


@pytest.mark.parametrize(
    ("cls", "table", "parser"),
    [
        (TrainConfig, TRAIN_OPTIONS, "training.train"),
        (EvalConfig, EVAL_OPTIONS, "training.evaluate"),
    ],
)
def test_every_option_is_a_flag_of_its_cli(cls: type, table: dict[str, Any], parser: str) -> None:
    import importlib

    build = importlib.import_module(parser).build_parser()
    flags = {s for action in build._actions for s in action.option_strings}
    for opt in options(cls):
        assert opt.flag in flags, opt.flag
    for name, entry in table.items():
        assert entry.flag in flags, name
        default = build.parse_args([]).__dict__[entry.option.name]
        if entry.option.kind is not tuple:
            assert default == entry.option.default, name


def test_lsp_options_get_the_cli_validation_before_anything_runs() -> None:
    from training.job import JobOptionError

    with pytest.raises(JobOptionError, match=r"option 'maxSteps' must be ≥ 1, got 0"):
        option_flags({"maxSteps": 0}, TRAIN_OPTIONS)
    with pytest.raises(JobOptionError, match=r"option 'gateMetric' must be one of exact_match"):
        option_flags({"gateMetric": "bleu"}, TRAIN_OPTIONS)
    with pytest.raises(JobOptionError, match=r"option 'evaluate' must be true or false"):
        option_flags({"evaluate": "no"}, TRAIN_OPTIONS)
    with pytest.raises(JobOptionError, match=r"option 'maxMinutes' must be > 0, got -1"):
        option_flags({"maxMinutes": -1}, EVAL_OPTIONS)
    assert option_flags({"evaluate": False, "valFraction": 0.2}, TRAIN_OPTIONS) == [
        "--no-eval", "--val-fraction", "0.2",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"^--max-steps must be ≥ 1$"):
        TrainConfig(max_steps=0)


def test_a_drifted_client_or_doc_is_named(tmp_path: Path) -> None:
    """The checks above do fail: a changed default, enum, limit or doc row is reported."""
    props = _properties()
    props[PREFIX + "maxNewTokens"]["default"] = 32
    props[PREFIX + "device"]["enum"] = ["auto", "cpu"]
    props[PREFIX + "finetune.maxSteps"]["minimum"] = 0
    del props[PREFIX + "stateDir"]
    problems = setting_problems(props) + finetune_problems(props)
    assert any(p.startswith("codellama.maxNewTokens: default is 32") for p in problems)
    assert any(p.startswith("codellama.device: enum") for p in problems)
    assert "codellama.stateDir: missing" in problems
    assert any(p.startswith("codellama.finetune.maxSteps: minimum") for p in problems)
    for path in {file for file, _ in option_docs.BLOCKS}:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    readme = tmp_path / "README.md"
    readme.write_text(
        readme.read_text().replace("| `debounceMs` | `75` |", "| `debounceMs` | `50` |")
    )
    assert option_docs.stale(tmp_path) == ["README.md"]
