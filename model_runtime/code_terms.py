"""What a source file says about names, for the repository index (:mod:`model_runtime.retrieval`).

Pure regular expressions over the text, language-agnostic enough for Python, JS/TS, Go, Rust:

- :func:`identifiers`: the BM25 terms of a piece of text (identifiers, lower-cased, no keywords);
- :func:`definitions`: names bound by ``def`` / ``class`` / ``function`` / ``fn`` / top-level
  assignments, with their line, so a name used near the cursor finds where it is defined;
- :func:`imports` and :func:`module_keys`: the modules a file imports and the dotted names a
  file can be imported as, which together resolve imports to indexed files.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFINITION = re.compile(
    r"^(?P<indent>[ \t]*)(?:export\s+)?(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?"
    r"(?:def|class|function\*?|fn|func(?:\s*\([^)]*\))?|struct|enum|trait|interface|type)"
    r"\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
)
_ASSIGNMENT = re.compile(
    r"^(?:(?:export\s+)?(?:const|let|var)\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=]+)?=[^=]"
)
_PY_IMPORT = re.compile(
    r"^\s*(?:from\s+(?P<from>\.*[\w.]*)\s+import\s+|import\s+(?P<mods>[\w., ]+))"
)
_JS_IMPORT = re.compile(r"""(?:from\s+|require\(\s*|import\s+)['"](?P<mod>[^'"]+)['"]""")
KEYWORDS = frozenset(
    [
        "def",
        "class",
        "return",
        "if",
        "else",
        "elif",
        "for",
        "while",
        "in",
        "not",
        "and",
        "or",
        "is",
        "none",
        "true",
        "false",
        "import",
        "from",
        "as",
        "with",
        "try",
        "except",
        "finally",
        "raise",
        "pass",
        "break",
        "continue",
        "lambda",
        "yield",
        "async",
        "await",
        "self",
        "cls",
        "function",
        "const",
        "let",
        "var",
        "new",
        "this",
        "null",
        "undefined",
        "fn",
        "pub",
        "struct",
        "impl",
        "use",
        "mod",
        "func",
        "package",
        "int",
        "str",
        "float",
        "bool",
        "list",
        "dict",
        "set",
        "tuple",
        "print",
        "len",
        "range",
    ]
)


def identifiers(text: str) -> set[str]:
    """The index's terms of ``text``: identifiers of 2+ characters, lower-cased, no keywords."""
    return {
        w for w in (m.lower() for m in IDENTIFIER.findall(text)) if len(w) > 1 and w not in KEYWORDS
    }


def definitions(content: str) -> dict[str, list[int]]:
    """Names ``content`` defines (``def``, ``class``, ``fn`` ... and top-level assignments) →
    their 0-based lines."""
    found: dict[str, list[int]] = {}
    for number, line in enumerate(content.split("\n")):
        match = _DEFINITION.match(line)
        if match is None and line[:1].isalpha():  # top-level assignments only
            match = _ASSIGNMENT.match(line)
        if match is not None:
            found.setdefault(match.group("name"), []).append(number)
    return found


_LOCAL_BINDING = re.compile(
    r"^[ \t]*(?:(?:const|let|var)\s+)?(?P<names>[A-Za-z_][\w, \t]*?)\s*(?::[^=]+)?=[^=]"
    r"|\bfor\s+(?P<loop>[A-Za-z_][\w, \t]*?)\s+in\b"
    r"|\bas\s+(?P<alias>[A-Za-z_]\w*)"
)


def bound_names(lines: Iterable[str]) -> set[str]:
    """Names the lines bind at any indentation: definitions, assignments (``a, b = ...``),
    loop variables and ``as`` aliases -- what a reader of these lines can already see bound."""
    found: set[str] = set()
    for line in lines:
        definition = _DEFINITION.match(line)
        if definition is not None:
            found.add(definition.group("name"))
        for match in _LOCAL_BINDING.finditer(line):
            names = match.group("names") or match.group("loop") or match.group("alias") or ""
            found.update(IDENTIFIER.findall(names))
    return found


def imports(content: str, path: str) -> tuple[str, ...]:
    """Module names imported by ``content`` (dotted Python names or JS relative paths)."""
    mods: list[str] = []
    for line in content.split("\n")[:400]:
        if "import" not in line and "require" not in line:
            continue
        match = _PY_IMPORT.match(line)
        if match is not None:
            if match.group("from") is not None:
                mods.append(_resolve_relative(match.group("from"), path))
                names = line.split("import", 1)[1].strip(" ()\\")
                base = mods[-1]
                mods.extend(
                    f"{base}.{n.split(' as ')[0].strip()}" if base else n.strip()
                    for n in names.split(",")
                    if n.strip() and n.strip() != "*"
                )
            else:
                mods.extend(m.split(" as ")[0].strip() for m in match.group("mods").split(","))
            continue
        for js in _JS_IMPORT.finditer(line):
            mod = js.group("mod")
            if mod.startswith("."):
                mod = posixpath.normpath(posixpath.join(posixpath.dirname(path), mod))
            mods.append(mod.replace("/", "."))
    return tuple(m for m in mods if m)


def _resolve_relative(module: str, path: str) -> str:
    dots = len(module) - len(module.lstrip("."))
    if dots == 0:
        return module
    parts = posixpath.dirname(path).split("/") if posixpath.dirname(path) else []
    parts = parts[: len(parts) - (dots - 1)] if dots > 1 else parts
    rest = module[dots:]
    return ".".join([*parts, *([rest] if rest else [])])


def module_keys(path: str) -> list[str]:
    """Dotted names a file can be imported as (``src/pkg/mod.py`` → ``pkg.mod``, ``mod`` ...)."""
    stem, _ = posixpath.splitext(path)
    parts = stem.split("/")
    if parts[-1] in ("__init__", "index", "mod"):
        parts = parts[:-1]
    return [".".join(parts[i:]) for i in range(len(parts)) if parts[i:]]


_RECEIVER = re.compile(r"\b([A-Za-z_]\w*)\.\w*$")


def receiver_type(lines: Sequence[str]) -> list[str]:
    """The annotated type of the object a member is being completed on: for ``store.`` at the
    cursor and ``store: InventoryStore`` among ``lines`` (a parameter or an annotated
    variable), ``["InventoryStore"]``; [] when there is no receiver or no annotation."""
    match = _RECEIVER.search(lines[-1]) if lines else None
    if match is None or match.group(1) in ("self", "cls", "this"):
        return []
    pattern = re.compile(rf"\b{re.escape(match.group(1))}\s*:\s*(?:[\w.]+\.)?([A-Za-z_]\w*)")
    for line in reversed(lines):
        annotation = pattern.search(line)
        if annotation is not None:
            return [annotation.group(1)]
    return []
