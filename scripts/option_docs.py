"""The generated option tables in the docs and the Neovim client, from the option definitions.

    python scripts/option_docs.py --write     rewrite every generated block
    python scripts/option_docs.py --check     exit 1 naming each block that is out of date
    python scripts/option_docs.py --print     print the Markdown tables

The definitions are :class:`lsp_server.settings.Settings` (server settings) and
:class:`training.config.TrainConfig` / :class:`training.config.EvalConfig` (``codellama-train``,
``codellama-eval`` and the ``codellama.finetune`` / ``codellama.evaluate`` options). A block
sits between a ``BEGIN options:<name>`` and an ``END options:<name>`` line (Markdown or Lua
comments); in the Neovim help it is the lines after the ``*codellama-settings-list*`` heading
up to the next blank line. ``tests/test_option_drift.py`` runs :func:`stale` and checks what is
kept by hand (VS Code ``package.json`` / ``constants.ts``) against the same definitions.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lsp_server.settings import SETTINGS, Settings  # noqa: E402
from training.config import EvalConfig, TrainConfig  # noqa: E402
from training.options import Option, camel, describe, markdown_table  # noqa: E402

HELP_HEADING = "*codellama-settings-list*"
"""The Neovim help tag after which the generated list of server settings starts."""


def _lsp(opt: Option) -> bool:
    return opt.lsp_name is not None


def lua_type(opt: Option) -> str:
    """The LuaLS type of a setting: ``'auto'|'cpu'``, ``integer``, ``string|nil``, ..."""
    if opt.values:
        text = "|".join(f"'{v}'" for v in opt.values)
    else:
        text = {bool: "boolean", int: "integer", float: "number"}.get(opt.kind, "string")
    return text + ("|nil" if opt.optional else "")


def lua_default(opt: Option) -> str:
    """The default in Lua spelling (``nil``, ``true``, ``'auto'``, ``64``)."""
    value = opt.default
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"'{value}'"
    return str(value)


def lua_settings() -> str:
    """LuaLS annotations of the server settings (completion and hover in lua_ls)."""
    lines = [
        "---@class codellama.ServerSettings",
        "--- The server's settings (camelCase), each optional: unset keeps the server's default.",
    ]
    for opt in SETTINGS:
        help_text = describe(opt)
        lines.append(
            f"---@field {camel(opt.name)}? {lua_type(opt)} {help_text} "
            f"(default: {lua_default(opt)})"
        )
    return "\n".join(lines) + "\n"


def help_settings() -> str:
    """The Neovim help's list of server settings: name, default, values (≤ 78 columns)."""
    defaults = ['""' if o.default == "" else lua_default(o).replace("'", "") for o in SETTINGS]
    width = max(8, 2 + max(map(len, defaults)))  # a long default ("inprocess") stays apart
    lines = []
    for opt, default in zip(SETTINGS, defaults, strict=True):
        values = " | ".join(opt.values) if opt.values else ""
        if not values and opt.spec.minimum is not None and opt.spec.maximum is not None:
            values = f"{opt.spec.minimum:g}-{opt.spec.maximum:g}"
        lines.append(f"  {camel(opt.name):<20}{default:<{width}}{values}".rstrip())
    return "\n".join(lines) + "\n"


def settings_table() -> str:
    """The README's settings table."""
    return markdown_table(Settings, ("key", "json_default", "meaning"), where=lambda o: True)


BLOCKS: dict[tuple[str, str], Callable[[], str]] = {
    ("README.md", "settings"): settings_table,
    ("docs/training.md", "finetune"): lambda: markdown_table(
        TrainConfig, ("lsp", "flag", "default", "meaning"), where=_lsp
    ),
    ("docs/training.md", "evaluate"): lambda: markdown_table(
        EvalConfig, ("lsp", "flag", "default", "meaning"), where=_lsp
    ),
    ("docs/training.md", "codellama-train"): lambda: markdown_table(
        TrainConfig, ("flag", "default", "meaning")
    ),
    ("docs/training.md", "codellama-eval"): lambda: markdown_table(
        EvalConfig, ("flag", "default", "meaning")
    ),
    ("clients/neovim/lua/codellama/config.lua", "settings"): lua_settings,
    ("clients/neovim/doc/codellama.txt", "settings"): help_settings,
}
"""(file, block name) → the function rendering the block's text."""


def _span(text: str, path: str, name: str) -> tuple[int, int]:
    """Start and end offsets of the generated block ``name`` in ``text`` (ValueError if none)."""
    if path.endswith(".txt"):
        head = text.index(HELP_HEADING)
        start = text.index("\n", head) + 1
        return start, text.index("\n\n", start) + 1
    match = re.search(rf"^.*BEGIN options:{re.escape(name)}\b.*\n", text, re.M)
    end = re.search(rf"^.*END options:{re.escape(name)}\b", text, re.M)
    if not match or not end:
        raise ValueError(f"{path}: no generated block options:{name}")
    return match.end(), end.start()


def updated(path: str, text: str) -> str:
    """``text`` (of file ``path``) with every generated block re-rendered."""
    for (file, name), render in BLOCKS.items():
        if file == path:
            start, end = _span(text, path, name)
            text = text[:start] + render() + text[end:]
    return text


def stale(root: Path = ROOT) -> list[str]:
    """The files whose generated blocks differ from the definitions."""
    out = []
    for path in dict.fromkeys(file for file, _ in BLOCKS):
        text = (root / path).read_text(encoding="utf-8")
        if updated(path, text) != text:
            out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the generated blocks")
    mode.add_argument("--check", action="store_true", help="exit 1 when a block is stale")
    mode.add_argument("--print", action="store_true", help="print the Markdown tables")
    args = parser.parse_args(argv)
    if args.print:
        for (file, name), render in BLOCKS.items():
            if file.endswith(".md"):
                print(f"## {name}\n\n{render()}")
        return 0
    old = stale()
    if args.check:
        for path in old:
            print(f"{path}: generated option block out of date (scripts/option_docs.py --write)")
        return 1 if old else 0
    for path in old:
        file = ROOT / path
        file.write_text(updated(path, file.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
