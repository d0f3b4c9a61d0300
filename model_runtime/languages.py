"""Languages of files by name, and a one-line comment naming a file in its language's syntax.

The comment (``# path: src/app.py``) is the path header of prompts (:mod:`model_runtime.prompt`)
and of repository-context snippets (:mod:`model_runtime.repo_context`); training examples use
the same header, so the model sees one format everywhere.
"""

from __future__ import annotations

import posixpath

_LINE_COMMENT: dict[str, str] = {
    **dict.fromkeys(
        [
            "python",
            "shell",
            "bash",
            "sh",
            "zsh",
            "ruby",
            "perl",
            "r",
            "yaml",
            "toml",
            "make",
            "makefile",
            "dockerfile",
            "cmake",
            "elixir",
            "julia",
            "nim",
            "powershell",
            "coffeescript",
        ],
        "#",
    ),
    **dict.fromkeys(
        [
            "c",
            "cpp",
            "c++",
            "csharp",
            "java",
            "javascript",
            "javascriptreact",
            "typescript",
            "typescriptreact",
            "go",
            "rust",
            "kotlin",
            "swift",
            "scala",
            "dart",
            "php",
            "groovy",
            "objective-c",
            "objective-cpp",
            "zig",
            "proto",
            "jsonc",
            "solidity",
            "verilog",
        ],
        "//",
    ),
    **dict.fromkeys(["lua", "sql", "haskell", "ada", "elm", "purescript"], "--"),
    **dict.fromkeys(["lisp", "clojure", "scheme", "racket", "ini", "asm"], ";"),
    **dict.fromkeys(["tex", "latex", "erlang", "matlab", "prolog"], "%"),
    "vim": '"',
    "fortran": "!",
}
_BLOCK_COMMENT: dict[str, tuple[str, str]] = {
    **dict.fromkeys(["html", "xml", "markdown", "vue", "svelte"], ("<!--", "-->")),
    **dict.fromkeys(["css", "scss", "less"], ("/*", "*/")),
    "ocaml": ("(*", "*)"),
}
_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".sh": "shell",
    ".bash": "shell",
    ".rb": "ruby",
    ".pl": "perl",
    ".r": "r",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".cs": "csharp",
    ".java": "java",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascriptreact",
    ".ts": "typescript",
    ".tsx": "typescriptreact",
    ".go": "go",
    ".rs": "rust",
    ".kt": "kotlin",
    ".swift": "swift",
    ".scala": "scala",
    ".dart": "dart",
    ".php": "php",
    ".lua": "lua",
    ".sql": "sql",
    ".hs": "haskell",
    ".clj": "clojure",
    ".el": "lisp",
    ".tex": "tex",
    ".erl": "erlang",
    ".m": "matlab",
    ".vim": "vim",
    ".f90": "fortran",
    ".html": "html",
    ".htm": "html",
    ".xml": "xml",
    ".md": "markdown",
    ".vue": "vue",
    ".svelte": "svelte",
    ".css": "css",
    ".scss": "scss",
    ".less": "less",
    ".ml": "ocaml",
    ".zig": "zig",
    ".ex": "elixir",
    ".exs": "elixir",
    ".jl": "julia",
    ".ps1": "powershell",
}
_FILENAMES = {"makefile": "make", "dockerfile": "dockerfile", "cmakelists.txt": "cmake"}


def guess_language(path: str) -> str | None:
    """LSP language id from a file name (``None`` when unknown)."""
    name = posixpath.basename(path.replace("\\", "/")).lower()
    if name in _FILENAMES:
        return _FILENAMES[name]
    return _EXTENSIONS.get(posixpath.splitext(name)[1])


def comment_header(path: str, language: str | None = None) -> str:
    """A one-line comment naming the file, in the language's comment syntax ("" if no path)."""
    if not path:
        return ""
    language = (language or guess_language(path) or "").lower()
    shown = path.replace("\\", "/")
    if language in _BLOCK_COMMENT:
        start, end = _BLOCK_COMMENT[language]
        return f"{start} path: {shown} {end}\n"
    if language in _LINE_COMMENT:
        return f"{_LINE_COMMENT[language]} path: {shown}\n"
    if language in ("json", "plaintext", "text"):
        return ""  # no comment syntax: a header would be invalid content
    return f"# path: {shown}\n"
