"""Language detection by file name and extension, and which languages are data/markup."""

from __future__ import annotations

import posixpath

# fmt: off
EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyx": "cython", ".ipynb": "jupyter",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".tsx": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".java": "java", ".kt": "kotlin", ".kts": "kotlin", ".scala": "scala", ".groovy": "groovy",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp",
    ".hh": "cpp", ".hxx": "cpp", ".cu": "cuda", ".m": "objective-c", ".mm": "objective-c",
    ".cs": "csharp", ".fs": "fsharp", ".vb": "visual-basic", ".go": "go", ".rs": "rust",
    ".swift": "swift", ".rb": "ruby", ".php": "php", ".pl": "perl", ".pm": "perl",
    ".lua": "lua", ".r": "r", ".jl": "julia", ".dart": "dart", ".ex": "elixir",
    ".exs": "elixir", ".erl": "erlang", ".hs": "haskell", ".ml": "ocaml", ".mli": "ocaml",
    ".clj": "clojure", ".el": "emacs-lisp", ".lisp": "lisp", ".scm": "scheme", ".zig": "zig",
    ".nim": "nim", ".v": "verilog", ".sv": "systemverilog", ".vhd": "vhdl", ".sol": "solidity",
    ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".fish": "fish", ".ps1": "powershell",
    ".bat": "batch", ".cmd": "batch", ".sql": "sql", ".vim": "vim", ".tf": "terraform",
    ".hcl": "hcl", ".proto": "protobuf", ".graphql": "graphql", ".gql": "graphql",
    ".html": "html", ".htm": "html", ".xml": "xml", ".xsl": "xml", ".svg": "svg",
    ".css": "css", ".scss": "scss", ".sass": "sass", ".less": "less", ".vue": "vue",
    ".svelte": "svelte", ".json": "json", ".jsonc": "json", ".json5": "json",
    ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".ini": "ini", ".cfg": "ini",
    ".conf": "ini", ".properties": "properties", ".csv": "csv", ".tsv": "csv",
    ".md": "markdown", ".markdown": "markdown", ".rst": "restructuredtext", ".tex": "tex",
    ".txt": "text", ".cmake": "cmake", ".mk": "makefile", ".gradle": "groovy",
    ".dockerfile": "dockerfile",
}

FILENAMES: dict[str, str] = {
    "Makefile": "makefile", "GNUmakefile": "makefile", "makefile": "makefile",
    "Dockerfile": "dockerfile", "Containerfile": "dockerfile", "CMakeLists.txt": "cmake",
    "Rakefile": "ruby", "Gemfile": "ruby", "Jenkinsfile": "groovy", "Vagrantfile": "ruby",
    "BUILD": "starlark", "WORKSPACE": "starlark", "BUILD.bazel": "starlark",
    ".gitignore": "gitignore", ".gitattributes": "gitignore", ".codellamaignore": "gitignore",
    ".dockerignore": "gitignore", ".editorconfig": "ini", "requirements.txt": "text",
    "LICENSE": "text", "README": "text",
}

DATA_LANGUAGES: frozenset[str] = frozenset(
    {"json", "yaml", "toml", "ini", "properties", "csv", "markdown", "restructuredtext",
     "text", "html", "xml", "svg", "tex", "jupyter", "gitignore"}
)
# fmt: on
"""Data and markup: exempt from the longest-line threshold (long lines are normal there)."""


def detect_language(path: str) -> str | None:
    """The language of a workspace-relative POSIX path, or ``None`` when unknown."""
    name = posixpath.basename(path)
    if name in FILENAMES:
        return FILENAMES[name]
    if name.startswith("Dockerfile."):
        return "dockerfile"
    _, ext = posixpath.splitext(name)
    return EXTENSIONS.get(ext.lower()) if ext else None
