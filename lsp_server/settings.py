"""User settings of the server: one tree of defaulted dataclasses, filled from camelCase JSON.

Settings arrive as ``initializationOptions`` and as the ``codellama`` section of
``workspace/configuration`` (VS Code ``settings.json``, Neovim ``settings = {codellama = ...}``).
:func:`parse_settings` never raises: each invalid value is replaced by its default and reported
as a :class:`SettingError` naming the setting and saying why, so the server can tell the user
and carry on. A combination that cannot work (backend ``openai`` without an ``endpoint``) is
reported and kept as it is: nothing is served until it is fixed (falling back to in-process
would load the tokenizer's model on this machine, maybe a 7B one). A value that may hold a
secret (``apiKeyEnv`` set to a key, credentials in ``endpoint``) is never echoed.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import cattrs

from training.options import Option, camel, option, options

__all__ = [
    "SECTION",
    "SettingError",
    "Settings",
    "merge_settings",
    "parse_settings",
]

SECTION = "codellama"
"""The ``workspace/configuration`` section (and the key under which clients nest settings)."""

Device = Literal["auto", "cpu", "cuda", "mps"]
Dtype = Literal["auto", "float32", "float16", "bfloat16"]
Quantize = Literal["auto", "none", "int8", "int4"]
LogLevel = Literal["error", "warning", "info", "debug"]
Backend = Literal["inprocess", "llama.cpp", "openai"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a user can configure. Field names are snake_case; JSON keys are camelCase.

    The one definition of the settings: the clients' setting lists (VS Code ``package.json`` and
    ``constants.ts``, the Neovim config and help) and the README table follow it, checked by
    ``tests/test_option_drift.py`` (regenerate the docs with ``scripts/option_docs.py --write``).
    """

    model: str = option(
        "",
        "Model to serve: hub id, local Hugging Face directory, `bundled:qwen2.5-coder-0.5b` or "
        "`bundled:smollm2-135m`. Empty: CodeLlama-7B when a CUDA GPU is present, else the "
        "bundled Qwen2.5-Coder-0.5B.",
    )
    adapter: str | None = option(
        None, "Optional PEFT (LoRA) adapter directory served on top of `model`; null for none."
    )
    device: Device = option(  # noqa: RUF009 (immutable: a Literal string)
        "auto",
        "Where the model runs: `auto` (CUDA when available, else CPU), `cpu`, `cuda`, `mps`.",
    )
    dtype: Dtype = option(  # noqa: RUF009 (immutable: a Literal string)
        "auto",
        "Weight dtype: `auto` (bf16/fp16 on CUDA; on a CPU bf16 where it is native and keeps the "
        "model's greedy output, else fp32), `float32`, `float16`, `bfloat16`.",
    )
    quantize: Quantize = option(  # noqa: RUF009 (immutable: a Literal string)
        "auto",
        "Weight-only quantisation of the linear layers for CPU decoding (faster): `auto` (the "
        "measured choice per bundled model served in bf16, none elsewhere: int8 for the bundled "
        "Qwen, same exact match, 2.4x decode), `none`, `int8`, `int4` (fastest, costs accuracy).",
    )
    trust_remote_code: bool = option(
        False,
        "Allow model repositories to run their own Python code when loading (off unless you "
        "trust it).",
    )
    backend: Backend = option(  # noqa: RUF009 (immutable: a Literal string)
        "inprocess",
        "Where the tokens come from: `inprocess` (transformers in the server), `llama.cpp` (a "
        "llama.cpp server the language server starts and owns on 127.0.0.1, serving the GGUF "
        "of `model`: a bundled model or a `.gguf` file; needs scripts/build_llama_cpp.sh) or "
        "`openai` (an OpenAI-compatible engine at `endpoint`, e.g. vLLM; `model` then names the "
        "served weights' tokenizer). Prompts, stop rules and the cache are ours either way.",
    )
    endpoint: str = option(
        "",
        "Base URL of the engine for backend `openai` (`http://gpu-box:8000`); no credentials "
        "in it (see `apiKeyEnv`).",
    )
    engine_model: str = option(
        "", "Model name the `openai` engine serves; empty: the engine's first model."
    )
    api_key_env: str = option(
        "",
        "Name of the environment variable holding the `openai` engine's API key (the key "
        "itself never goes in settings, logs or status; it is sent only to `endpoint`); empty: "
        "no key.",
    )
    max_new_tokens: int = option(
        64, "Upper bound on generated tokens per completion.", minimum=1, maximum=4096
    )
    context_tokens: int = option(
        1536,
        "Prompt budget in tokens, prefix-heavy, cut at line boundaries.",
        minimum=64,
        maximum=32768,
    )
    debounce_ms: int = option(
        75,
        "Wait this long (ms) after a keystroke before starting the model; a newer keystroke "
        "cancels.",
        minimum=0,
        maximum=5000,
    )
    prompt_lookup: int = option(
        0,
        "Prompt-lookup decoding: number of tokens to copy from the context per step; 0 disables.",
        minimum=0,
        maximum=64,
    )
    prefetch: bool = option(
        True,
        "Be ready before asked: prefill the model's cache when a file is opened or the cursor "
        "enters another function, and compute the next suggestion while one is shown "
        "(background, low priority, cancelled by any real request).",
    )
    log_level: LogLevel = option(  # noqa: RUF009 (immutable: a Literal string)
        "info", "Minimum level of messages sent to the editor's log (and `logFile`)."
    )
    log_file: str | None = option(
        None, "Also append the server log to this file; null for no file."
    )
    refactor_model: str | None = option(
        None, "Model for refactor code actions; null reuses `model`."
    )
    watch_dataset: bool = option(
        True, "Keep the workspace dataset in sync with file changes while the server runs."
    )
    state_dir: str | None = option(
        None, "Where dataset, adapters and reports live; null for `<workspace>/.codellama`."
    )
    repo_context: bool = option(
        True,
        "Put snippets of other workspace files (from the dataset) in front of each completion "
        "prompt.",
    )
    repo_context_tokens: int = option(
        384,
        "Tokens of `contextTokens` given to those snippets, at most half the budget.",
        minimum=0,
        maximum=16384,
    )


SETTINGS: tuple[Option, ...] = tuple(options(Settings))
"""The settings' types, defaults, limits and help (:func:`training.options.options`)."""


@dataclasses.dataclass(frozen=True)
class SettingError:
    """One rejected setting: its camelCase name, the offending value and why it was rejected."""

    name: str
    value: Any
    reason: str
    unknown: bool = False
    """True for keys we do not know (clients may send their own settings): log, don't nag."""

    def __str__(self) -> str:
        return f"{SECTION}.{self.name} = {self.value!r}: {self.reason}"


_camel = camel
_BY_NAME = {o.name: o for o in SETTINGS}
_FIELDS = {_camel(f.name): f for f in dataclasses.fields(Settings)}
_converter = cattrs.Converter(forbid_extra_keys=True)
# cattrs would happily turn "12" into 12 and 1.5 into 1; settings typed in JSON deserve strictness.
_converter.register_structure_hook(int, lambda v, _: _strict(v, int))
_converter.register_structure_hook(bool, lambda v, _: _strict(v, bool))
_converter.register_structure_hook(str, lambda v, _: _strict(v, str))


_KIND_NAMES = {int: "an integer", bool: "true or false", str: "a string"}


def _strict(value: Any, kind: type) -> Any:
    if kind is int and isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if not isinstance(value, kind):
        raise ValueError(f"expected {_KIND_NAMES[kind]}, got {type(value).__name__}")
    return value


def _describe(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(annotation))
    return str(annotation)


def _convert(name: str, annotation: Any, value: Any) -> Any:
    """Structure one value, raising ``ValueError`` with a user-readable reason."""
    if get_origin(annotation) is Literal:
        if value not in get_args(annotation):
            raise ValueError(f"expected {_describe(annotation)}")
        return value
    try:
        result = _converter.structure(value, annotation)
    except Exception as exc:
        raise ValueError(_reason(exc)) from exc
    spec = _BY_NAME[name].spec
    low, high = spec.minimum, spec.maximum
    if low is not None and high is not None and not low <= result <= high:
        raise ValueError(f"must be between {low:g} and {high:g}")
    if isinstance(result, str) and "\x00" in result:
        # A path or model id with a NUL byte makes every OS call on it raise ValueError.
        raise ValueError("must not contain a NUL character")
    if isinstance(result, str) and name in {"adapter", "log_file", "refactor_model", "state_dir"}:
        result = result.strip() or None
    if isinstance(result, str) and name in _CHECKS:
        result = _CHECKS[name](result)
    if isinstance(result, str) and name in _PATHS:
        try:
            Path(result).expanduser()
        except RuntimeError as exc:  # "~nobody/x": no such user
            raise ValueError(f"cannot expand '~' ({exc})") from exc
    return result


_PATHS = {"adapter", "log_file", "state_dir"}
"""Settings that are local paths (``~`` is expanded)."""


class _Hidden(ValueError):
    """A rejected value that may hold a secret (a pasted key, a password in a URL): the error
    names the setting and the reason, never the value."""


def _endpoint(value: str) -> str:
    from model_runtime.openai_client import Endpoint  # stdlib only, no torch

    value = value.strip()
    if value:
        try:
            Endpoint.parse(value)  # ValueError naming the problem (scheme, host, credentials)
        except ValueError as exc:
            if "credentials" in str(exc):
                raise _Hidden(str(exc)) from None
            raise
    return value


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(value: str) -> str:
    value = value.strip()
    if value and not _ENV_NAME.fullmatch(value):
        raise _Hidden(
            "must be the NAME of an environment variable holding the key (letters, digits, "
            "_), not the key itself"
        )
    return value


_CHECKS: dict[str, Callable[[str], str]] = {
    "endpoint": _endpoint,
    "engine_model": str.strip,
    "api_key_env": _env_name,
}
"""Per-setting checks and normalisation of string values (``ValueError`` says why)."""


def _combination_errors(settings: Settings) -> list[SettingError]:
    """Rules across settings (each value alone is valid): reported, the values are kept."""
    if settings.backend == "openai" and not settings.endpoint:
        return [
            SettingError(
                "endpoint",
                settings.endpoint,
                "backend 'openai' needs the engine's base URL (e.g. http://127.0.0.1:8080); "
                "nothing is served until it is set",
            )
        ]
    return []


def _reason(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError) and exc.exceptions:
        return _reason(exc.exceptions[0])
    return str(exc) or type(exc).__name__


def _unwrap(raw: Any) -> Mapping[str, Any] | None:
    """Accept both ``{"model": ...}`` and ``{"codellama": {"model": ...}}``."""
    if not isinstance(raw, Mapping):
        return None
    nested = raw.get(SECTION)
    if isinstance(nested, Mapping):
        return nested
    return raw


def parse_settings(
    raw: Any, *, base: Settings | None = None
) -> tuple[Settings, list[SettingError]]:
    """Build settings from client JSON; invalid values keep the ``base`` (default) value.

    Unknown keys are reported too (a typo would otherwise be silently ignored). ``None`` (how
    VS Code sends a cleared setting) clears an optional setting and keeps the base value of
    the others.
    """
    base = base or Settings()
    errors: list[SettingError] = []
    if raw is None:
        return base, errors
    data = _unwrap(raw)
    if data is None:
        return base, [SettingError("", raw, "settings must be a JSON object")]
    values: dict[str, Any] = {}
    for key, value in data.items():
        field = _FIELDS.get(key)
        if field is None:
            if key != SECTION:
                errors.append(SettingError(str(key), value, "unknown setting (ignored)", True))
            continue
        if value is None:
            if type(None) in get_args(_annotation(field)):
                values[field.name] = None
            continue
        try:
            values[field.name] = _convert(field.name, _annotation(field), value)
        except ValueError as exc:
            shown = "<hidden>" if isinstance(exc, _Hidden) else value
            errors.append(SettingError(key, shown, str(exc)))
    settings = dataclasses.replace(base, **values)
    return settings, errors + _combination_errors(settings)


def _annotation(field: dataclasses.Field[Any]) -> Any:
    # ``from __future__ import annotations`` leaves strings; resolve them against this module.
    return eval(field.type, globals()) if isinstance(field.type, str) else field.type


def merge_settings(*sources: Any) -> dict[str, Any]:
    """Overlay raw settings objects left to right (later wins); non-objects are skipped.

    A later ``null`` wins too: it is how a client says a setting was cleared (VS Code sends
    ``"adapter": null`` once the user removes it), so it must override the init options.
    """
    merged: dict[str, Any] = {}
    for source in sources:
        data = _unwrap(source)
        if data:
            merged.update(data)
    return merged


def log_level_number(level: str) -> int:
    """Map a ``logLevel`` setting to a :mod:`logging` level."""
    return getattr(logging, level.upper(), logging.INFO)


def as_json(settings: Settings) -> dict[str, Any]:
    """The camelCase JSON view of ``settings`` (for status reports and logs)."""
    return {_camel(k): v for k, v in dataclasses.asdict(settings).items()}
