"""Chat prompts per refactor action, and their rendering through the tokenizer's chat template.

Every prompt ends with an assistant *prefill*: the start of the answer we want (an opening
``\"\"\"``, ``def name(width: `` or a code fence). Greedy decoding then continues in the expected
shape, which is what makes a 135M-parameter model usable here; ``stop`` ends generation as soon as
the shape is complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LANGUAGE_NAMES = {
    "python": "Python",
    "javascript": "JavaScript",
    "typescript": "TypeScript",
    "typescriptreact": "TypeScript",
    "javascriptreact": "JavaScript",
    "rust": "Rust",
    "go": "Go",
    "c": "C",
    "cpp": "C++",
    "java": "Java",
    "lua": "Lua",
    "sh": "shell",
    "shellscript": "shell",
}

FENCE = "```"


@dataclass(frozen=True)
class ModelPrompt:
    """One generation request: chat messages, the answer's forced start, and when to stop."""

    messages: list[dict[str, str]]
    prefill: str
    stop: tuple[str, ...]
    max_new_tokens: int
    extra: dict[str, Any] = field(default_factory=dict)


def language_name(language: str) -> str:
    """Human name of an LSP language id (``python`` → ``Python``)."""
    return LANGUAGE_NAMES.get(language, language or "code")


def fence_tag(language: str) -> str:
    """The info string for a fenced code block in ``language``."""
    return {"typescriptreact": "tsx", "javascriptreact": "jsx", "shellscript": "sh"}.get(
        language, language
    )


def _system(language: str) -> dict[str, str]:
    return {
        "role": "system",
        "content": f"You are an expert {language_name(language)} programmer. You answer briefly.",
    }


def _with_feedback(text: str, feedback: str | None) -> str:
    if not feedback:
        return text
    return f"{text}\n\nA previous answer was rejected because {feedback}. Answer again, correctly."


def _code_block(code: str, language: str) -> str:
    return f"{FENCE}{fence_tag(language)}\n{code.rstrip()}\n{FENCE}"


def docstring_prompt(code: str, kind: str, name: str, feedback: str | None = None) -> ModelPrompt:
    """Ask only for the docstring text of the Python function/class ``name``."""
    user = (
        f"Write a one-sentence docstring for this Python {kind} `{name}`. "
        f"Reply with the docstring only.\n\n{_code_block(code, 'python')}"
    )
    return ModelPrompt(
        [_system("python"), {"role": "user", "content": _with_feedback(user, feedback)}],
        prefill='"""',
        stop=('"""', "\n\n", FENCE),
        max_new_tokens=48,
    )


def signature_prompt(code: str, prefill: str, feedback: str | None = None) -> ModelPrompt:
    """Ask for the annotated ``def`` line of one Python function; ``prefill`` starts it."""
    user = (
        "Add type hints to this Python function. Reply with the annotated def line only, "
        "using types such as int, float, str, bool, list[str], dict[str, int]. For example, "
        "`def scale(value, factor):` becomes `def scale(value: float, factor: float) -> float:`."
        f"\n\n{_code_block(code, 'python')}"
    )
    return ModelPrompt(
        [_system("python"), {"role": "user", "content": _with_feedback(user, feedback)}],
        prefill=f"{FENCE}python\n{prefill}",
        stop=(":\n", FENCE),
        max_new_tokens=64,
    )


def rename_prompt(
    code: str, candidates: list[str], prefill: str, feedback: str | None = None
) -> ModelPrompt:
    """Ask for ``old -> new`` lines renaming unclear local names of a Python function."""
    names = ", ".join(candidates)
    user = (
        "Suggest clearer, descriptive names for the unclear variables in this Python code. "
        f"Variables: {names}. Reply with one line per rename in the form `old -> new`, "
        "for example `n -> count`.\n\n"
        f"{_code_block(code, 'python')}"
    )
    return ModelPrompt(
        [_system("python"), {"role": "user", "content": _with_feedback(user, feedback)}],
        prefill=prefill,
        stop=("\n\n", FENCE),
        max_new_tokens=64,
    )


def rewrite_prompt(
    code: str, language: str, goal: str, feedback: str | None = None, *, max_new_tokens: int
) -> ModelPrompt:
    """Ask for the whole region rewritten in one fenced code block."""
    user = (
        f"{goal}\nReply with the complete rewritten code in a single {FENCE}{fence_tag(language)} "
        f"code block and nothing else.\n\n{_code_block(code, language)}"
    )
    return ModelPrompt(
        [_system(language), {"role": "user", "content": _with_feedback(user, feedback)}],
        prefill=f"{FENCE}{fence_tag(language)}\n",
        stop=(FENCE,),
        max_new_tokens=max_new_tokens,
    )


def render_prompt(tokenizer: Any, prompt: ModelPrompt) -> str:
    """The prompt text: the tokenizer's chat template when it has one, else a plain layout.

    The prefill is appended after the generation prompt, so the model continues our answer.
    """
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            prompt.messages, tokenize=False, add_generation_prompt=True
        )
        return str(text) + prompt.prefill
    parts = []
    for message in prompt.messages:
        role = message["role"]
        header = {"system": "", "user": "### Instruction\n", "assistant": "### Response\n"}
        parts.append(header.get(role, f"### {role}\n") + message["content"])
    return "\n\n".join(parts) + "\n\n### Response\n" + prompt.prefill
