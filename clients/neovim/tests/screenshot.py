"""Screenshot of the Neovim client for the README: real Neovim in tmux showing ghost text.

Starts the real server (bundled model by default) behind the plugin in a 100×30 tmux pane,
types the start of a function, waits until the ghost text is drawn, and writes
``neovim-completion.txt`` (plain capture), ``.ansi`` (with colours) and ``.png`` (rendered from
the ANSI capture with Pillow) into ``--out`` (default docs/img).

    python clients/neovim/tests/screenshot.py [--model bundled:qwen2.5-coder-0.5b] [--out docs/img]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN_DIR = HERE.parent
REPO = PLUGIN_DIR.parent.parent
COLS, ROWS = 100, 30

_spec = importlib.util.spec_from_file_location("codellama_nvim_run", HERE / "run.py")
assert _spec and _spec.loader
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)

INIT = """
local cfg = vim.json.decode(os.getenv('CODELLAMA_SHOT_CONFIG'))
vim.opt.runtimepath:prepend(cfg.plugin_dir)
vim.cmd('filetype plugin indent on')
vim.cmd('syntax on')
vim.o.termguicolors = true
vim.o.number = true
vim.o.swapfile = false
vim.o.laststatus = 2
vim.o.showmode = true
vim.o.statusline = " %f %m%= %{v:lua.require'codellama'.statusline()} "
require('codellama').setup({ cmd = cfg.server_cmd, server = cfg.server_settings, progress = false })
"""

# The function the demo types: its body is what the model suggests.
TYPED = ["o", "Enter", "Enter", "def median(values: list[float]) -> float:", "Enter"]


def tmux(*args: str, check: bool = True) -> str:
    """Run tmux on this script's own server socket (never the user's)."""
    out = subprocess.run(
        ["tmux", "-L", "codellama-shot", *args], capture_output=True, text=True, check=check
    )
    return out.stdout


def remote(nvim: str, sock: Path, expr: str) -> str:
    out = subprocess.run(
        [nvim, "--server", str(sock), "--remote-expr", expr],
        capture_output=True,
        text=True,
        timeout=20,
    )
    return out.stdout.strip()


SGR = re.compile(r"\x1b\[([0-9;:]*)m")
XTERM16 = [
    (0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16),
    (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229),
    (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67),
    (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255),
]  # fmt: skip


def xterm256(n: int) -> tuple[int, int, int]:
    if n < 16:
        return XTERM16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return steps[n // 36], steps[(n // 6) % 6], steps[n % 6]
    v = 8 + 10 * (n - 232)
    return v, v, v


def render_png(ansi: str, out: Path, cursor: tuple[int, int] | None = None) -> None:
    """Draw an ANSI capture (SGR colours, bold, italic) as a PNG terminal screenshot, with a bar
    cursor at ``cursor`` (column, row) when given."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    size = 16
    regular = ImageFont.truetype(str(fonts / "DejaVuSansMono.ttf"), size)
    variants = {
        (False, False): regular,
        (True, False): ImageFont.truetype(str(fonts / "DejaVuSansMono-Bold.ttf"), size),
        (False, True): ImageFont.truetype(str(fonts / "DejaVuSansMono-Oblique.ttf"), size),
        (True, True): ImageFont.truetype(str(fonts / "DejaVuSansMono-BoldOblique.ttf"), size),
    }
    cw = int(regular.getlength("M") + 0.5)
    ch = size + 5
    default_fg, default_bg = (220, 220, 220), (20, 22, 28)
    lines = ansi.split("\n")[:ROWS]
    img = Image.new("RGB", (COLS * cw + 24, ROWS * ch + 24), default_bg)
    draw = ImageDraw.Draw(img)
    for y, line in enumerate(lines):
        fg, bg, bold, italic, reverse = default_fg, default_bg, False, False, False
        x, pos = 0, 0
        for m in [*SGR.finditer(line), None]:
            text = line[pos : m.start() if m else len(line)]
            for char in text:
                f, b = (bg, fg) if reverse else (fg, bg)
                px, py = 12 + x * cw, 12 + y * ch
                draw.rectangle([px, py, px + cw, py + ch], fill=b)
                draw.text((px, py + 2), char, font=variants[(bold, italic)], fill=f)
                x += 1
            if m is None:
                break
            pos = m.end()
            codes = [int(p) if p else 0 for p in re.split("[;:]", m.group(1))] or [0]
            i = 0
            while i < len(codes):
                c = codes[i]
                if c == 0:
                    fg, bg, bold, italic, reverse = default_fg, default_bg, False, False, False
                elif c == 1:
                    bold = True
                elif c == 3:
                    italic = True
                elif c == 7:
                    reverse = True
                elif c == 22:
                    bold = False
                elif c == 23:
                    italic = False
                elif c == 27:
                    reverse = False
                elif c in (38, 48) and i + 1 < len(codes):
                    if codes[i + 1] == 2 and i + 4 < len(codes):
                        rgb = (codes[i + 2], codes[i + 3], codes[i + 4])
                        i += 4
                    elif codes[i + 1] == 5 and i + 2 < len(codes):
                        rgb = xterm256(codes[i + 2])
                        i += 2
                    else:
                        rgb = default_fg if c == 38 else default_bg
                    if c == 38:
                        fg = rgb
                    else:
                        bg = rgb
                elif c == 39:
                    fg = default_fg
                elif c == 49:
                    bg = default_bg
                elif 30 <= c <= 37 or 90 <= c <= 97:
                    fg = XTERM16[c - 30 if c < 90 else c - 82]
                elif 40 <= c <= 47 or 100 <= c <= 107:
                    bg = XTERM16[c - 40 if c < 100 else c - 92]
                i += 1
    if cursor:
        px, py = 12 + cursor[0] * cw, 12 + cursor[1] * ch
        draw.rectangle([px, py + 1, px + 1, py + ch - 1], fill=default_fg)
    img.save(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="bundled:qwen2.5-coder-0.5b")
    ap.add_argument("--out", default=str(REPO / "docs" / "img"))
    ap.add_argument("--server-cmd", default=None, help="server command as JSON")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args(argv)
    if not shutil.which("tmux"):
        raise SystemExit("tmux is required")
    nvim = run.find_nvim()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="codellama-shot-"))
    try:
        workspace = tmp / "workspace"
        run.make_workspace(workspace)
        model = args.model
        if model == "tiny":
            sys.path.insert(0, str(HERE))
            from tiny_model import build_tiny_model

            model = str(build_tiny_model(Path(tempfile.gettempdir()) / "codellama-nvim-tiny-model"))
        (tmp / "init.lua").write_text(INIT)
        sock = tmp / "nvim.sock"
        config = {
            "plugin_dir": str(PLUGIN_DIR),
            "server_cmd": json.loads(args.server_cmd)
            if args.server_cmd
            else [sys.executable, "-m", "lsp_server"],
            "server_settings": {"model": model, "device": "cpu"},
        }
        env = {
            "CODELLAMA_SHOT_CONFIG": json.dumps(config),
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(REPO),
        }
        env_args = [f"{k}={v}" for k, v in env.items()]
        cmd = ["env", *env_args, nvim, "-u", str(tmp / "init.lua"), "-i", "NONE", "-n"]
        cmd += ["--listen", str(sock), "sample/stats.py"]
        tmux("kill-server", check=False)
        tmux("-f", "/dev/null", "new-session", "-d", "-s", "shot", "-x", str(COLS), "-y", str(ROWS),
             "-c", str(workspace), " ".join(map(_quote, cmd)))  # fmt: skip
        tmux("set-option", "-g", "default-terminal", "tmux-256color")
        deadline = time.monotonic() + args.timeout
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        attached = "luaeval('#vim.lsp.get_clients({bufnr=0, name=\"codellama\"})')"
        while remote(nvim, sock, attached) != "1" and time.monotonic() < deadline:
            time.sleep(0.2)
        tmux("send-keys", "-t", "shot", "G")
        for keys in TYPED:
            tmux("send-keys", "-t", "shot", *([keys] if keys in ("Enter", "o") else ["-l", keys]))
            time.sleep(0.2)
        shown = ""
        expr = 'luaeval(\'(require("codellama.ghost").get(0) or {text=""}).text\')'
        while time.monotonic() < deadline:
            shown = remote(nvim, sock, expr)
            if shown:
                break
            time.sleep(0.5)
        if not shown:
            print(tmux("capture-pane", "-p", "-t", "shot"))
            print(
                remote(
                    nvim,
                    sock,
                    'luaeval(\'vim.inspect({require("codellama.ghost").stats, vim.api.nvim_get_mode(), vim.lsp.get_clients({bufnr=0})[1].name, vim.b.codellama_disabled, vim.fn.maparg("<Tab>", "i")})\')',
                )
            )
            print(remote(nvim, sock, "execute('messages')"))
            raise SystemExit("no ghost text appeared")
        time.sleep(0.5)
        text = tmux("capture-pane", "-p", "-t", "shot")
        ansi = tmux("capture-pane", "-p", "-e", "-t", "shot")
        (out / "neovim-completion.txt").write_text(text)
        (out / "neovim-completion.ansi").write_text(ansi)
        cx, cy = tmux("display-message", "-p", "-t", "shot", "#{cursor_x} #{cursor_y}").split()
        render_png(ansi, out / "neovim-completion.png", (int(cx), int(cy)))
        print(text)
        print(f"ghost text: {shown!r}\nwrote {out}/neovim-completion.{{txt,ansi,png}}")
        return 0
    finally:
        tmux("kill-server", check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


if __name__ == "__main__":
    sys.exit(main())
