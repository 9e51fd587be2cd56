"""`pose-server web`: a Gradio page that turns an uploaded video into animation files (pose_server.convert).

Loopback by default; bound to any other address it asks for a token (user name `mocap`), like the control API.
Gradio is imported only here, so the server runs without it.
"""

from __future__ import annotations

import argparse
import hmac
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from pose_server.control.server import is_loopback  # the control API's and the panel's rule


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pose-server web", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="address to serve on; anything but loopback needs --token")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--token", default=os.environ.get("POSE_WEB_TOKEN", ""),
                    help="password of the page (user name 'mocap') when served beyond loopback "
                         "(default: $POSE_WEB_TOKEN)")
    ap.add_argument("--model", default="auto", help="the page's initial model, as `pose-server run --model`: auto, "
                                                    "small|base|large|huge (ViTPose), blazepose-lite|full|heavy; "
                                                    "the page lists them all")
    ap.add_argument("--checkpoint", default=None, help="local weights instead of --model: a .pth / .safetensors / "
                                                        "HF folder")
    ap.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    ap.add_argument("--detector", default="auto", help="the page's initial person detector")
    ap.add_argument("--kpt-threshold", type=float, default=0.3)
    ap.add_argument("--max-frames", type=int, default=None, help="convert at most this many frames per upload")
    ap.add_argument("--max-upload-mb", type=float, default=200.0, help="largest accepted upload")
    ap.add_argument("--work-dir", default=None, help="folder for uploads and results (default: a new temp folder)")
    ap.add_argument("--allow-downloads", action="store_true",
                    help="beyond loopback, let the page's users make the server download ViTPose weights (on "
                         "loopback it always may)")
    return ap


def launch(argv: list[str] | None = None) -> int:
    """Serve the page until Ctrl-C."""
    args = build_parser().parse_args(argv)
    if not is_loopback(args.host) and not args.token:
        print(f"pose-server web: serving on {args.host} lets anyone on the network convert videos on this "
              "machine; set a token with --token or $POSE_WEB_TOKEN (user name 'mocap')", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `docker stop`, kill: leave through the finally below
    root = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="pose-web-"))
    try:
        return _serve(args, root)
    finally:
        if not args.work_dir:  # the folder this run made for itself: uploads and results go with it
            shutil.rmtree(root, ignore_errors=True)


def _serve(args: argparse.Namespace, root: Path) -> int:
    os.environ["GRADIO_TEMP_DIR"] = str(root / "uploads")  # before gradio loads: uploads stay in the app's folder
    try:
        from .app import WebDefaults, build_app
    except ImportError as exc:
        print(f"pose-server web needs gradio ({exc}); install it with: pip install -c constraints.txt gradio",
              file=sys.stderr)
        return 2
    defaults = WebDefaults(checkpoint=args.checkpoint, model=args.model, backend=args.backend, detector=args.detector,
                           kpt_threshold=args.kpt_threshold, max_frames=args.max_frames,
                           work_dir=root, downloads=args.allow_downloads or is_loopback(args.host))
    app, root = build_app(defaults)

    def auth(user: str, password: str) -> bool:  # constant-time: how long it takes tells nothing of the token
        return hmac.compare_digest(f"{user}\n{password}".encode(), f"mocap\n{args.token}".encode())

    print(f"web: http://{args.host}:{args.port}  (jobs in {root})", file=sys.stderr)
    app.queue(default_concurrency_limit=1, max_size=32)
    app.launch(server_name=args.host, server_port=args.port, auth=auth if args.token else None, show_error=True,
               inbrowser=False, max_file_size=f"{args.max_upload_mb:g}mb", allowed_paths=[str(root)], share=False)
    return 0
