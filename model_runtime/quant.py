"""Weight-only int8 / int4 linear layers for CPU serving, and the ``quantize`` choice.

Why: decoding one token reads every weight once, so on a CPU decode speed is memory bandwidth
÷ weight bytes. Qwen2.5-Coder-0.5B in bf16 reads ~1 GB per token (a quarter of it the tied
151,936 x 896 output projection); llama.cpp reads its ~0.4 GB Q4_K_M/Q5_0 file and decoded
3x faster on this 2-core AVX512-BF16 CPU (issue 9). Python overhead is not the gap; bytes are.

How: torch's own CPU kernels, the ones gpt-fast uses (no extra dependency, shipped with torch
2.13, no compiler needed): ``torch._weight_int8pack_mm`` (symmetric int8, one scale per output
channel) and ``torch._weight_int4pack_mm_for_cpu`` (asymmetric int4, scale + zero per group of
:data:`INT4_GROUP` input channels). torchao 0.18 wraps the same kernels for CPU; it would add a
dependency for nothing here. Measured (single matmul, activations of one token, bf16, 2 threads,
weights cycling through memory like a real decode): int8 2.5x and int4 5.8x faster than bf16 on
the 151,936 x 896 head; whole-model decode in one interleaved run with llama.cpp: see
``bench/decode_bench.py`` and ``bench/RESULTS.md``.

Every ``nn.Linear`` of the decoder and the output head is replaced; the embedding lookup stays
in the model's dtype (with tied embeddings only the head gets a quantised *copy*). Prompt
chunks of more than :data:`MATMUL_ROWS` rows (prefill) run the original float layer, which is
kept anyway (see Adapters): oneDNN's bf16 GEMM is faster than the int kernels for many rows
(measured: a 512-token prefill took 2.2x as long through the int4 kernel), and the prompt's
keys and values are then the float model's. Only the weights read per decoded token are
quantised, which is where the bytes matter.

Adapters: :func:`restore_linears` puts the original float layers back (peft wraps and merges
only dense ``nn.Linear``); the loader then applies and merges the LoRA weights and quantises the
merged model again. The originals are kept (no copy: the same modules), so removing the adapter
restores the base exactly, and quantising is deterministic, so the base's int weights are the
same as before. Layers inside ``lora_A`` / ``lora_B`` are never quantised (an unmerged adapter
runs in float on top of the quantised base layer).

This module imports torch: import it inside functions of code that must stay cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

MODES = ("none", "int8", "int4")
"""Concrete weight formats; ``auto`` resolves to one of them (see :func:`choose_quantize`)."""
INT4_GROUP = 32
"""Input channels per int4 scale/zero pair (the GGUF's Q5_0/Q4_K blocks are 32 wide too)."""
MATMUL_ROWS = 16
"""Above this many rows a quantised layer dequantises and uses the dense matmul (prefill)."""

AUTO_CPU: dict[str, tuple[str, str]] = {
    "bundled:qwen2.5-coder-0.5b": (
        "int8",
        "int8 decodes 2.4x as fast as bf16 at the same exact match (100 held-out click holes "
        "with repository context: line EM 43.8 int8 vs 42.5 bf16; int4 decodes 3.1x as fast "
        "but loses 5 points of line EM)",
    ),
}
"""``quantize: auto`` on a CPU, per bundled model: (mode, measured reason), applied where the
model is served in bf16 (the measured configuration). Other models and dtypes: none."""


class QuantizeError(ValueError):
    """An invalid ``quantize`` value or a device the quantised kernels do not run on."""


@dataclass(frozen=True)
class QuantChoice:
    """The weight format ``quantize`` resolves to, and why (shown in the log and status)."""

    mode: str
    """``none``, ``int8`` or ``int4``."""
    reason: str
    """One line, e.g. ``auto: ...``."""


def normalise_quantize(value: str | None) -> str:
    """``none`` | ``int8`` | ``int4`` | ``auto`` (case-insensitive; ``None``/'' → ``none``)."""
    name = (value or "none").strip().lower()
    if name not in (*MODES, "auto"):
        raise QuantizeError(f"unknown quantize '{value}'; use none, int8, int4 or auto")
    return name


def choose_quantize(
    quantize: str | None, device: str, model: str = "", dtype: str = "bfloat16"
) -> QuantChoice:
    """Resolve ``quantize`` for ``model`` on ``device`` served in ``dtype``.

    ``auto``: on a CPU, for a model served in bf16, the measured choice recorded in
    :data:`AUTO_CPU` (quantise only where the quality benchmark kept exact match); ``none`` for
    other models and dtypes and on GPUs. An explicit ``int8`` / ``int4`` needs a CPU (the
    kernels used here are torch's CPU kernels).
    """
    name = normalise_quantize(quantize)
    if name == "auto":
        if device != "cpu":
            return QuantChoice("none", f"auto: no weight quantisation on {device}")
        if model in AUTO_CPU and dtype != "bfloat16":
            return QuantChoice("none", f"auto: measured for bf16 serving only, not {dtype}")
        mode, why = AUTO_CPU.get(model, ("none", "no measured quantisation for this model"))
        return QuantChoice(mode, f"auto: {why}")
    if name != "none" and device != "cpu":
        raise QuantizeError(f"quantize '{name}' runs on the CPU only; use device cpu or none")
    return QuantChoice(name, f"{name} (set explicitly)" if name != "none" else "none")


def _rows(weight: torch.Tensor, chunk: int = 8192) -> list[torch.Tensor]:
    """Row blocks of ``weight``: quantising a 151,936-row head in one go would need a second
    fp32 copy of it (545 MB) at load time."""
    return list(weight.detach().split(chunk, dim=0))


class Int8Linear(nn.Module):
    """``y = x @ (q * scale).T + b`` with int8 ``q`` and one scale per output channel (for at
    most :data:`MATMUL_ROWS` rows; more rows run the original float layer)."""

    weight_int8: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        quantised, scales = [], []
        for block in _rows(linear.weight):
            w = block.float()
            scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
            quantised.append(torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8))
            scales.append(scale)
        dtype = linear.weight.dtype
        self.register_buffer("weight_int8", torch.cat(quantised))
        self.register_buffer("scale", torch.cat(scales).to(dtype))
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self._dense = (linear,)  # a tuple: not a submodule (no second copy in state_dict)

    def dequantized(self) -> torch.Tensor:
        """The weight the layer computes with, in the activation dtype."""
        return self.weight_int8.to(self.scale.dtype) * self.scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        if x.numel() > MATMUL_ROWS * shape[-1]:  # a prompt chunk: the float layer, no cast
            return self._dense[0](x)
        flat = x.reshape(-1, shape[-1]).to(self.scale.dtype)
        y = torch._weight_int8pack_mm(flat, self.weight_int8, self.scale)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


class Int4Linear(nn.Module):
    """Asymmetric group-wise int4: ``w = (q - 8) * scale + zero`` per group of input channels
    (torch's CPU int4 pack; needs ``out_features % 16 == 0`` and ``in_features % group == 0``,
    see :func:`int4_fits`). More than :data:`MATMUL_ROWS` rows run the original float layer."""

    packed: torch.Tensor
    scales_zeros: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, linear: nn.Linear, group: int = INT4_GROUP) -> None:
        super().__init__()
        if not int4_fits(linear, group):
            raise QuantizeError(f"{linear} does not fit int4 groups of {group}")
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.group = group
        k = linear.in_features
        codes, pairs = [], []
        for block in _rows(linear.weight):
            w = block.float().reshape(block.shape[0], k // group, group)
            lo = w.amin(dim=-1, keepdim=True)
            scale = ((w.amax(dim=-1, keepdim=True) - lo) / 15.0).clamp(min=1e-6)
            q = torch.round((w - lo) / scale).clamp_(0, 15).to(torch.int32)
            codes.append(q.reshape(block.shape[0], k))
            pairs.append(torch.cat([scale, lo + 8.0 * scale], dim=-1))
        dtype = linear.weight.dtype
        self.register_buffer(
            "packed", torch._convert_weight_to_int4pack_for_cpu(torch.cat(codes), 1)
        )
        # [groups, out_features, 2]: the layout the kernel reads.
        self.register_buffer(
            "scales_zeros", torch.cat(pairs).transpose(0, 1).contiguous().to(dtype)
        )
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self._dense = (linear,)  # a tuple: not a submodule (no second copy in state_dict)

    def dequantized(self) -> torch.Tensor:
        """The weight the layer computes with (via the kernel on an identity matrix)."""
        eye = torch.eye(self.in_features, dtype=self.scales_zeros.dtype)
        return torch._weight_int4pack_mm_for_cpu(eye, self.packed, self.group, self.scales_zeros).T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        if x.numel() > MATMUL_ROWS * shape[-1]:  # a prompt chunk: the float layer, no cast
            return self._dense[0](x)
        flat = x.reshape(-1, shape[-1]).to(self.scales_zeros.dtype)
        y = torch._weight_int4pack_mm_for_cpu(flat, self.packed, self.group, self.scales_zeros)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"int4 group={self.group}"
        )


def int4_fits(linear: nn.Linear, group: int = INT4_GROUP) -> bool:
    """Whether torch's int4 CPU pack takes this layer's shape."""
    return linear.out_features % 16 == 0 and linear.in_features % group == 0


@dataclass
class Swap:
    """One replaced layer: ``setattr(parent, attr, original)`` undoes it."""

    parent: nn.Module
    attr: str
    original: nn.Linear


def quantize_linears(model: nn.Module, mode: str) -> list[Swap]:
    """Replace every plain ``nn.Linear`` of ``model`` in place by an int8 / int4 layer.

    Layers under ``lora_*`` modules are skipped (adapter weights stay float). int4 layers
    whose shape the kernel does not take get int8. Returns what :func:`restore_linears` needs.
    """
    if mode not in ("int8", "int4"):
        raise QuantizeError(f"quantize_linears takes int8 or int4, got '{mode}'")
    swaps: list[Swap] = []
    for name, parent in list(model.named_modules()):
        if "lora_" in name:
            continue
        for attr, child in list(parent.named_children()):
            if type(child) is not nn.Linear or attr.startswith("lora_"):
                continue
            int4 = mode == "int4" and int4_fits(child)
            new: nn.Module = Int4Linear(child) if int4 else Int8Linear(child)
            setattr(parent, attr, new)
            swaps.append(Swap(parent, attr, child))
    return swaps


def restore_linears(swaps: list[Swap]) -> None:
    """Put the original float layers back (the inverse of :func:`quantize_linears`)."""
    for swap in reversed(swaps):
        setattr(swap.parent, swap.attr, swap.original)
    swaps.clear()
