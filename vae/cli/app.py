"""``python -m vae app --run PATH``: the app on one run folder (a run logged with ``vae.track``, say)."""
from __future__ import annotations

import os

from ..launch import ROOT, command, free_port


def register(sub) -> None:
    p = sub.add_parser("app", help="open the app on a run folder (this machine only)")
    p.set_defaults(func=cmd_app)
    p.add_argument("--run", required=True, help="the run folder to open")
    p.add_argument("--port", type=int, default=None, help="the port (default: a free one)")


def cmd_app(args) -> int:
    cmd, env, url = command(args.run, args.port or free_port())
    print(f"VAE Lab on {args.run}: {url}", flush=True)
    os.chdir(ROOT)                                 # the checkout: .streamlit/config.toml is read from there
    os.execvpe(cmd[0], cmd, env)
