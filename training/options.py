"""Option sets as typed dataclasses, and every other view of them derived from the one definition.

An option set is a dataclass whose fields are declared with :func:`option`: a default, a help
text, and optionally limits, choices, an argument group and the camelCase name under which an LSP
command accepts it. From that one definition come

- the argparse flags, ``--field-name`` (booleans ``--x`` / ``--no-x``): :func:`add_arguments`;
- the validation, with messages naming the flag (``--lr must be > 0``): :func:`check`;
- the LSP option → CLI flag tables (``training.job.TRAIN_OPTIONS``): :func:`lsp_table`, and the
  conversion of one LSP value with the same limits: :func:`lsp_value`;
- the Markdown tables of the docs: :func:`markdown_table` (``scripts/option_docs.py --write``
  puts those of ``codellama-train``, ``codellama-eval`` and the server settings into README.md,
  docs/training.md and the Neovim client; ``--print`` prints them).

The server's :class:`lsp_server.settings.Settings` is declared the same way. This module is pure
(no torch, nothing of ours) so the server may import it at start-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple, get_args, get_origin

SPEC_KEY = "option"
"""The ``dataclasses.field`` metadata key holding an option's :class:`Spec`."""


@dataclasses.dataclass(frozen=True)
class Spec:
    """What one option is, besides its name, type and default."""

    help: str
    """What the option does (``--help`` text, docs table, client descriptions)."""
    group: str = ""
    """Argument group of ``--help`` and the docs ("" = the parser's own options)."""
    minimum: float | None = None
    """Smallest allowed value (inclusive)."""
    maximum: float | None = None
    """Largest allowed value (inclusive)."""
    above: float | None = None
    """Values must be greater than this (exclusive minimum)."""
    below: float | None = None
    """Values must be smaller than this (exclusive maximum)."""
    choices: tuple[str, ...] = ()
    """The allowed values of a string option (empty: any)."""
    lsp: str | bool = False
    """The camelCase name an LSP command accepts it under (True: derived from the field name)."""
    cli: bool = True
    """Whether the option has a command-line flag."""


def option(
    default: Any,
    help: str,
    *,
    group: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    choices: tuple[str, ...] = (),
    lsp: str | bool = False,
    cli: bool = True,
) -> Any:
    """A dataclass field with its default and :class:`Spec` (use as ``x: int = option(1, ...)``)."""
    spec = Spec(help, group, minimum, maximum, above, below, choices, lsp, cli)
    return dataclasses.field(default=default, metadata={SPEC_KEY: spec})


def camel(name: str) -> str:
    """``max_new_tokens`` → ``maxNewTokens``."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def flag(name: str) -> str:
    """``max_new_tokens`` → ``--max-new-tokens``."""
    return "--" + name.replace("_", "-")


class Option(NamedTuple):
    """One option of a set: its field, resolved type and spec."""

    name: str
    kind: type
    """``int``, ``float``, ``str``, ``bool`` or ``tuple`` (a comma-separated list on the CLI)."""
    optional: bool
    """``None`` is a value (``X | None``)."""
    default: Any
    spec: Spec
    literal: tuple[Any, ...] = ()
    """The values of a ``Literal[...]`` type (the server's enum settings)."""

    @property
    def flag(self) -> str:
        """The CLI flag."""
        return flag(self.name)

    @property
    def lsp_name(self) -> str | None:
        """The camelCase name an LSP command accepts, or None when it accepts none."""
        if self.spec.lsp is True:
            return camel(self.name)
        return self.spec.lsp or None

    @property
    def values(self) -> tuple[Any, ...]:
        """The allowed values (choices or Literal members), empty when any value of the type is."""
        return self.spec.choices or self.literal


def _resolve(annotation: Any) -> tuple[type, bool, tuple[Any, ...]]:
    """``int | None`` → (int, True, ()); ``Literal["a", "b"]`` → (str, False, ("a", "b"))."""
    optional = False
    if get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(members) < len(get_args(annotation))
        annotation = members[0]
    if get_origin(annotation) is Literal:
        values = get_args(annotation)
        return type(values[0]), optional, values
    origin = get_origin(annotation) or annotation
    return (origin if isinstance(origin, type) else str), optional, ()


def options(cls: type) -> list[Option]:
    """The options of an option-set dataclass, in definition order (plain fields are skipped)."""
    module = sys.modules[cls.__module__]
    hints = typing.get_type_hints(cls, vars(module))
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(SPEC_KEY)
        if spec is None:
            continue
        kind, optional, literal = _resolve(hints[f.name])
        out.append(Option(f.name, kind, optional, f.default, spec, literal))
    return out


# -- validation ------------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:g}"


def limit_text(spec: Spec) -> str:
    """``≥ 1``, ``> 0``, ``in [0, 1)``, ... ("" without limits)."""
    low = (
        f"[{_num(spec.minimum)}" if spec.minimum is not None
        else f"({_num(spec.above)}" if spec.above is not None else None
    )  # fmt: skip
    high = (
        f"{_num(spec.maximum)}]" if spec.maximum is not None
        else f"{_num(spec.below)})" if spec.below is not None else None
    )  # fmt: skip
    if low and high:
        return f"in {low}, {high}"
    if low:
        return ("≥ " if low[0] == "[" else "> ") + low[1:]
    if high:
        return ("≤ " if high[-1] == "]" else "< ") + high[:-1]
    return ""


def problem(opt: Option, value: Any) -> str | None:
    """Why ``value`` (already of the option's type) is not allowed, or None when it is."""
    if value is None:
        return None
    spec = opt.spec
    if opt.values and value not in opt.values:
        return "must be one of " + ", ".join(str(v) for v in opt.values)
    if opt.kind in (int, float) and not isinstance(value, bool):
        ok = (
            (spec.minimum is None or value >= spec.minimum)
            and (spec.maximum is None or value <= spec.maximum)
            and (spec.above is None or value > spec.above)
            and (spec.below is None or value < spec.below)
        )
        if not ok:
            return "must be " + limit_text(spec)
    return None


def check(instance: Any) -> None:
    """Raise ``ValueError("--flag must be ...")`` for the first option whose value is not allowed."""
    for opt in options(type(instance)):
        reason = problem(opt, getattr(instance, opt.name))
        if reason:
            raise ValueError(f"{opt.flag} {reason}")


# -- argparse --------------------------------------------------------------------------------


def add_arguments(
    parser: argparse.ArgumentParser, cls: type, *, skip: set[str] | frozenset[str] = frozenset()
) -> None:
    """One ``--flag`` per option of ``cls`` (help = its help text), in argument groups."""
    groups: dict[str, Any] = {}
    for opt in options(cls):
        if opt.name in skip or not opt.spec.cli:
            continue
        group = opt.spec.group
        if group and group not in groups:
            groups[group] = parser.add_argument_group(group)
        target = groups.get(group, parser)
        help_text = describe(opt).replace("%", "%%")
        if opt.kind is bool:
            target.add_argument(
                opt.flag, action=argparse.BooleanOptionalAction, default=opt.default,
                help=help_text,
            )  # fmt: skip
        elif opt.kind is tuple:
            target.add_argument(opt.flag, default=",".join(opt.default), help=help_text)
        else:
            choices = opt.values or None
            target.add_argument(
                opt.flag, type=opt.kind, default=opt.default, choices=choices, help=help_text
            )


def from_namespace(cls: type, ns: argparse.Namespace) -> Any:
    """An instance of ``cls`` from parsed arguments (its ``__post_init__`` validates)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(ns).items() if k in names})


# -- LSP command options ---------------------------------------------------------------------


class LspOption(NamedTuple):
    """How one camelCase option of an LSP command becomes a CLI flag."""

    flag: str
    kind: type
    option: Option


def lsp_table(cls: type) -> dict[str, LspOption]:
    """camelCase LSP name → :class:`LspOption`, for the options of ``cls`` exposed to LSP."""
    return {
        name: LspOption(opt.flag, opt.kind, opt)
        for opt in options(cls)
        if (name := opt.lsp_name) is not None
    }


_WHAT = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def lsp_value(key: str, value: Any, opt: Option) -> Any:
    """``value`` (JSON) as the option's type and within its limits; ``ValueError`` says why.

    Numbers must be finite (whole for ``int``), strings and booleans are not numbers (``"1e3"``
    is not accepted as one), booleans only ``true`` / ``false``.
    """
    bad = ValueError(f"option {key!r} must be {_WHAT.get(opt.kind, 'a string')}, got {value!r}")
    if opt.kind is bool:
        if not isinstance(value, bool):
            raise bad
        converted: Any = value
    elif opt.kind in (int, float):
        if isinstance(value, bool | str):
            raise bad
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise bad from None
        if not math.isfinite(number) or (opt.kind is int and not number.is_integer()):
            raise bad
        converted = int(number) if opt.kind is int else number
    else:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise bad
        converted = str(value)
    reason = problem(opt, converted)
    if reason:
        raise ValueError(f"option {key!r} {reason}, got {value!r}")
    return converted


def lsp_flags(key: str, value: Any, opt: Option) -> list[str]:
    """The CLI arguments for one LSP option value (``--no-x`` for a false boolean)."""
    converted = lsp_value(key, value, opt)
    if opt.kind is bool:
        return [opt.flag if converted else "--no-" + opt.flag[2:]]
    return [opt.flag, str(converted)]


# -- docs ------------------------------------------------------------------------------------


def default_text(opt: Option, *, json: bool = False) -> str:
    """The default as the docs show it (``json``: ``null`` for None, else *unset*)."""
    value = opt.default
    if value is None:
        return "`null`" if json else "*(unset)*"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return "`" + ",".join(value) + "`"
    if value == "":
        return '`""`'
    return f"`{value}`"


def describe(opt: Option) -> str:
    """The help text plus the allowed values or range, for a docs table cell."""
    text = " ".join(opt.spec.help.split())
    extra = []
    if opt.values and not all(f"`{v}`" in text for v in opt.values):
        extra.append(" / ".join(f"`{v}`" for v in opt.values))
    limits = limit_text(opt.spec)
    if limits:
        extra.append(limits)
    if not extra:
        return text
    period = "." if text.endswith(".") else ""
    text = text.removesuffix(".")
    if text.endswith(")"):  # "... (a note)" → "... (a note; ≥ 1)"
        return f"{text[:-1]}; {'; '.join(extra)}){period}"
    return f"{text} ({'; '.join(extra)}){period}"


Column = tuple[str, Callable[[Option], str]]

COLUMNS: Mapping[str, Column] = {
    "flag": (
        "flag",
        lambda o: f"`{o.flag}`" + (f" / `--no-{o.flag[2:]}`" if o.kind is bool else ""),
    ),
    "lsp": ("LSP option", lambda o: f"`{o.lsp_name}`" if o.lsp_name else ""),
    "key": ("key", lambda o: f"`{camel(o.name)}`"),
    "default": ("default", default_text),
    "json_default": ("default", lambda o: default_text(o, json=True)),
    "meaning": ("meaning", describe),
}


def markdown_table(
    cls: type,
    columns: tuple[str, ...] = ("flag", "lsp", "default", "meaning"),
    *,
    where: Callable[[Option], bool] = lambda o: o.spec.cli,
) -> str:
    """A Markdown table of the options of ``cls`` that ``where`` keeps, one row per option."""
    cols = [COLUMNS[c] for c in columns]
    lines = ["| " + " | ".join(title for title, _ in cols) + " |"]
    lines.append("|" + "---|" * len(cols))
    for opt in options(cls):
        if where(opt):
            cells = [cell(opt).replace("|", "\\|") for _, cell in cols]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
