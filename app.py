"""CMP Studio: mounts the header and the pages, owns the default Engine and the engine pool, parses flags."""
from __future__ import annotations

import argparse
import os
import sys
import threading

import gradio as gr

from cmp.checkpoints import CheckpointError
from cmp.device import tune_malloc, tune_onednn
from cmp.engine import Engine
from cmp.images import MAX_SIDE
from cmp.pool import EnginePool
from demos import gallery, header, motion, outputs, segment, server
from demos.common import Context, example_images
from demos.outputs import start_run

PAGES = [("Motion", motion), ("Segment", segment), ("Gallery", gallery)]
#: Uploads above this are refused by the server (413) and by gradio_client before sending.
MAX_FILE_SIZE = "20mb"
#: Feature cache of the one engine: encoded images kept for quick clicks, LRU-evicted
#: past either bound (the default model needs about 4 MB per image at side 384).
CACHE_IMAGES, CACHE_MB = 16, 512
#: Models besides the default that sessions may choose, kept loaded (LRU): at most this
#: many, and this many MB counting weights plus each one's feature cache (8 images, 256 MB).
POOL_MODELS, POOL_MB = 3, 1536
#: Largest checkpoint file the app downloads for a session (the original ResNet-50 is 218 MB).
MAX_DOWNLOAD_MB = 1024
#: Browser tabs / API clients Gradio keeps a session for (LRU). Each costs about 0.3 MB of
#: server memory (a copy of the page config) until evicted here, so Gradio's default of
#: 10000 would allow ~3 GB. The small gr.State values inside expire sooner (time_to_live).
STATE_SESSIONS = 2000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description="CMP Studio: conditional motion propagation in the browser.")
    p.add_argument("--checkpoint", default=env("CMP_CHECKPOINT", "default"),
                   help="registry name, path or hf://owner/repo[/file] reference of the default model "
                        "(env CMP_CHECKPOINT; default: embedded model)")
    p.add_argument("--device", default=env("CMP_DEVICE", "auto"), help="auto, cpu, cuda, mps (env CMP_DEVICE)")
    p.add_argument("--precision", default=env("CMP_PRECISION", "auto"), choices=["auto", "fp32", "bf16", "fp16"],
                   help="autocast precision (env CMP_PRECISION)")
    p.add_argument("--host", default=env("GRADIO_SERVER_NAME", "127.0.0.1"), help="bind address (env GRADIO_SERVER_NAME)")
    p.add_argument("--port", type=int, default=int(env("GRADIO_SERVER_PORT", "7860")), help="port (env GRADIO_SERVER_PORT)")
    p.add_argument("--share", action="store_true", default=env("CMP_SHARE", "") == "1", help="create a public gradio.live link")
    p.add_argument("--allowed-hosts", default=env("CMP_ALLOWED_HOSTS", ""), metavar="HOST,...",
                   help="host names the server answers to besides localhost, e.g. 'studio.example.org,*.hf.space' "
                        "(env CMP_ALLOWED_HOSTS); on a loopback bind only localhost is answered without it, "
                        "on 0.0.0.0 any host is")
    p.add_argument("--trusted-proxies", default=env("CMP_TRUSTED_PROXIES", "*" if env("SPACE_ID") else ""),
                   metavar="ADDR,...",
                   help="addresses of reverse proxies whose X-Forwarded-For names the client, for the "
                        "per-address queue limit ('*' = any; env CMP_TRUSTED_PROXIES; default '*' on a "
                        "Hugging Face Space, which is reached only through its proxy)")
    p.add_argument("--max-image-side", type=int, default=int(env("CMP_MAX_IMAGE_SIDE", str(MAX_SIDE))),
                   help="longer uploads are downscaled to this many pixels (env CMP_MAX_IMAGE_SIDE)")
    return p.parse_args(argv)


# --- Hugging Face ZeroGPU (kept apart: only this block knows about it) -------------
def zero_gpu_args(args: argparse.Namespace, env=os.environ) -> argparse.Namespace:
    """On a ZeroGPU Space, load the model onto "cuda" at startup, as ZeroGPU expects.

    ZeroGPU lends a GPU only inside ``@spaces.GPU`` calls (see ``cmp.lease.run_model``) and
    moves tensors that were put on "cuda" at import time along with it. The precision
    is named here because CUDA must not initialise in the main process there, so the
    real GPU cannot be probed for bf16 (ZeroGPU's GPUs all have it). An explicit
    --device/--precision (or CMP_DEVICE/CMP_PRECISION) wins. Returns a new namespace;
    elsewhere it returns ``args`` unchanged.
    """
    if env.get("SPACES_ZERO_GPU", "").lower() not in ("1", "t", "true"):
        return args
    return argparse.Namespace(**{**vars(args),
                                 "device": "cuda" if args.device == "auto" else args.device,
                                 "precision": "bf16" if args.precision == "auto" else args.precision})


def load_engine(args: argparse.Namespace) -> tuple[Engine, str | None]:
    """The engine for ``args.checkpoint``; falls back to the embedded model with a notice."""
    kw = {"device": args.device, "precision": args.precision,
          "cache_entries": CACHE_IMAGES, "cache_bytes": CACHE_MB * 2**20}
    try:
        return Engine.from_checkpoint(args.checkpoint, **kw), None
    except CheckpointError as exc:
        if args.checkpoint in (None, "default"):
            raise
        print(f"warning: could not load '{args.checkpoint}': {exc}", file=sys.stderr)  # the whole story, for logs
        reason = str(exc) if len(str(exc)) <= 160 else str(exc)[:160].rstrip() + " ..."
        notice = f"Could not load '{args.checkpoint}' ({reason}); using the embedded default model."
        return Engine.from_checkpoint("default", **kw), notice


def build_app(ctx: Context, trusted_proxies: list[str] | None = None) -> gr.Blocks:
    server.keep_instance_patches()
    with gr.Blocks(title="CMP Studio", delete_cache=(1800, 3600)) as demo:
        gr.Markdown("# CMP Studio\nConditional Motion Propagation: draw a few arrows, see the whole image move.")
        header.build(ctx)
        if ctx.notice:
            gr.Markdown(f"**Notice:** {ctx.notice}")
        with gr.Tabs() as tabs:
            ctx.links["tabs"] = tabs  # so a page can open another (Segment's "Animate this object")
            for title, page in PAGES:
                with gr.Tab(title, id=title.lower()):
                    page.build(ctx)
    server.limit_progress_targets(demo)
    server.tune_queue_analytics()  # read by Gradio when the queue is made
    demo.queue(default_concurrency_limit=1, max_size=64)
    server.fair_queue(demo, trusted_proxies=trusted_proxies)
    outputs.keep(p for block in demo.blocks.values() for p in getattr(block, "keep_in_cache", ()))
    return demo


def launch_options(host: str = "127.0.0.1", allowed_hosts: list[str] | None = None) -> dict:
    """``demo.launch`` keywords every launch shares: request limits, the Host/Origin guard, no SSR."""
    from starlette.middleware import Middleware

    guard = Middleware(server.Guard, allowed_hosts=server.allowed_hosts_for(host, allowed_hosts or []))
    return {"max_file_size": MAX_FILE_SIZE, "state_session_capacity": STATE_SESSIONS, "ssr_mode": False,
            "app_kwargs": {"middleware": [guard]}}


def make_pool(engine: Engine, checkpoint: str | None, notice: str | None = None) -> EnginePool:
    """The app's engine pool around ``engine``, the model ``checkpoint`` named (the embedded
    default when it could not be loaded: ``notice``), with the app's bounds; its registry entry
    says which model segments for it (:meth:`cmp.pool.EnginePool.segmenter`)."""
    return EnginePool(engine, default_ref=checkpoint if notice is None else "default", max_models=POOL_MODELS,
                      max_bytes=POOL_MB * 2**20, max_download_bytes=MAX_DOWNLOAD_MB * 2**20)


def warm_up_in_background(engine: Engine, pool: EnginePool | None = None) -> threading.Thread:
    """Build the encoder's convolutions for every input size while the app starts and serves
    (:meth:`cmp.engine.Engine.warm_up`, ~2 s of CPU on 2 cores; a click waits at most one
    encoding for it), so a user's first photo of a new aspect ratio is encoded at full speed;
    then the same for the model the default segments with, if it has one (loaded into ``pool``)."""
    def run():
        engine.warm_up()
        if pool is not None and pool.segmenter_key(None):
            pool.segmenter(None).warm_up()

    t = threading.Thread(target=run, name="cmp-warm-up", daemon=True)
    t.start()
    return t


def main(argv: list[str] | None = None) -> int:
    tune_malloc()
    tune_onednn()  # before any model runs: oneDNN reads it once
    args = zero_gpu_args(parse_args(argv))
    try:
        engine, notice = load_engine(args)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start_run()  # before any Blocks: uploads, previews and outputs go into this run's own folder
    pool = make_pool(engine, args.checkpoint, notice)
    warm_up_in_background(engine, pool)
    demo = build_app(Context(engine=engine, max_side=args.max_image_side, notice=notice,
                             examples=example_images(), pool=pool),
                     trusted_proxies=server.split_hosts(args.trusted_proxies))
    hosts = server.split_hosts(args.allowed_hosts)
    if not hosts and not server.is_loopback(args.host):
        print(f"warning: bound to {args.host} without --allowed-hosts: any Host header is answered", file=sys.stderr)
    server.stop_on_signals(demo)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                **launch_options(args.host, hosts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
