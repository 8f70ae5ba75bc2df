"""``python -m vae runs ls|prune|rm``: a runs folder seen and cleaned from the shell (a teacher after class).

The folder is ``--root`` or ``$VAE_LAB_RUNS_DIR`` (the app's), else ``runs``. Nothing outside it is touched, a
run still training is never deleted, and neither is a data upload (``.uploads/<digest>``) a run was trained on
(``vae.upkeep``).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .. import upkeep


def _root(args) -> Path:
    return Path(args.root or os.environ.get("VAE_LAB_RUNS_DIR") or "runs")


def register(sub) -> None:
    p = sub.add_parser("runs", help="list, prune or delete the run folders of a runs folder (the app's, by default)")
    verbs = p.add_subparsers(dest="verb", required=True, parser_class=type(p))
    ls = verbs.add_parser("ls", help="one line per run and per data upload: state, owner, size, last change, "
                                     "snapshots")
    ls.set_defaults(func=cmd_ls)
    rm = verbs.add_parser("rm", help="delete runs by folder name (not while they train) or data uploads by the "
                                     "name ls gives (.uploads/DIGEST; not while a run uses them)")
    rm.set_defaults(func=cmd_rm)
    rm.add_argument("names", nargs="+", metavar="RUN")
    pr = verbs.add_parser("prune", help="delete old runs and old data uploads no run uses, and thin every run's "
                                        "snapshots")
    pr.set_defaults(func=cmd_prune)
    pr.add_argument("--older-than", type=float, default=None, metavar="DAYS",
                    help="delete runs and uploads not changed for this many days (default: none)")
    pr.add_argument("--owner", default=None, help="only runs (and uploads) owned by this person alone")
    pr.add_argument("--keep-snapshots", type=int, default=None, metavar="N",
                    help="keep N evenly spaced epoch snapshots per run (default: all)")
    pr.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    for q in (ls, rm, pr):
        q.add_argument("--root", default=None, help="the runs folder (default: $VAE_LAB_RUNS_DIR, else runs)")


def cmd_ls(args) -> int:
    rows = [r.as_dict() for r in [*upkeep.list_runs(_root(args)), *upkeep.list_uploads(_root(args))]]
    for r in rows:
        print(f"{r['run']:<48} {str(r['state'] or '-'):<11} {r['owner'][:26] or '-':<26} {r['mb']:>9.2f} MB  "
              f"{r['modified']}  {r['snapshots']} snapshots")
    print(json.dumps({"root": str(_root(args)), "runs": rows, "mb": round(sum(r["mb"] for r in rows), 2)}))
    return 0


def cmd_rm(args) -> int:
    removed = [upkeep.remove_run(_root(args), name).name for name in args.names]
    print(json.dumps({"removed": removed}))
    return 0


def cmd_prune(args) -> int:
    if args.keep_snapshots is not None and args.keep_snapshots < 1:
        raise ValueError(f"--keep-snapshots must be >= 1, got {args.keep_snapshots}")
    root, now = _root(args), time.time()
    removed, thinned, kept = [], 0, []
    for r in upkeep.list_runs(root):
        if args.owner is not None and r.owner != args.owner:
            continue
        old = args.older_than is not None and now - r.modified > args.older_than * 86400
        if old and r.state not in ("queued", "running"):
            if not args.dry_run:
                upkeep.remove_run(root, r.path.name)
            removed.append(r.path.name)
            continue
        kept.append(r.path.name)
        if args.keep_snapshots and not args.dry_run:
            thinned += upkeep.thin_snapshots(r.path, args.keep_snapshots)
    uploads = upkeep.list_uploads(root) if args.older_than is not None else []
    # an upload stays while a run that stays was trained on it (a dry run counts the runs above as gone)
    used = {u for u, users in upkeep.uploads_in_use(root).items() if set(users) - set(removed)} if uploads else set()
    for u in uploads:
        if args.owner is not None and u.owner != args.owner:
            continue
        if now - u.modified > args.older_than * 86400 and u.name not in used:
            if not args.dry_run:
                upkeep.remove_run(root, u.name)
            removed.append(u.name)
    print(json.dumps({"removed": removed, "snapshots_removed": thinned, "kept": len(kept),
                      "dry_run": args.dry_run}))
    return 0
