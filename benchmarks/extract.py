"""Feature extraction speed: decoding alone, the model alone, and ``extract`` end to end.

Generated videos (default 16 x 10 s of 320x240 at 25 fps, H.264, moving shapes over a
drifting gradient with noise), ResNet-50 at 224 px (random weights unless --weights), 32
frames per video sampled uniformly, batches of 32. Timed:

* ``decode``      ``decode_video`` over every video in this process with one FFmpeg thread:
                  every frame decoded, the sampled ones converted. Twice: with FFmpeg scaling
                  the sampled frames to the resize size (256, what ``extract`` does) and at
                  the stored size; each followed by the backbone's transform (resize + crop +
                  normalise), to see which way of resizing is cheaper.
* ``model``       the backbone alone (transform + forward) on the frames decoded above, in
                  the batches ``extract`` uses; measured before and after the end-to-end run
                  (the machine's load drifts) and averaged.
* ``end_to_end``  ``extract_features`` with ``--workers`` decoding processes, from the call
                  to its return (weights fingerprint, decoding, model, HDF5 writing and
                  adding the videos to the output included). Goal: at least 70 % of the
                  model-only frames/s.

``--long`` times only decoding, of one long video (``--long-seconds``, default 120 s, at the
same size and rate) for each keyframe interval of ``--gops`` (250 frames is x264's default,
50 is 2 s) and a few samplings: once decoding every frame (seeking switched off, as before
seeking was added) and once as ``decode_video`` chooses (seeking where it pays). Each is
timed twice and the faster kept.

    .venv/bin/python benchmarks/extract.py [--videos 16] [--threads N] [--workers 1]
    .venv/bin/python benchmarks/extract.py --quick     # 4 videos of 2 s: a smoke test
    .venv/bin/python benchmarks/extract.py --long      # seeking in a long video

Writes benchmarks/results/extract.json, or extract_long.json with ``--long`` (``--out`` to
change), with the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from mcsan.extract import build_backbone, decode, decode_video, extract_features
from mcsan.extract.decode import FrameSampling
from mcsan.extract.pipeline import embed_frames

GOAL = 0.70  # end to end / model only
RESULTS = Path(__file__).parent / "results"
LONG_SAMPLINGS = {  # name -> sampling, for --long
    "uniform, 32 frames (the default)": FrameSampling("uniform", 32),
    "1 frame every 5 s": FrameSampling("fps", 10_000, fps=0.2),
    "1 frame a second": FrameSampling("fps", 10_000, fps=1.0),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=25, help="frames per second of the videos")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--weights", type=Path, help="weights file (default: random weights)")
    parser.add_argument("--max-frames", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="decoding processes")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="4 videos of 2 s")
    parser.add_argument("--long", action="store_true", help="only decoding, of a long video")
    parser.add_argument("--long-seconds", type=float, default=120.0)
    parser.add_argument("--gops", type=int, nargs="+", default=[250, 50],
                        help="keyframe intervals (frames) of the long videos")
    parser.add_argument("--out", type=Path, help="the results file")
    args = parser.parse_args(argv)
    if args.quick:
        args.videos, args.seconds = 4, 2.0
    args.out = args.out or RESULTS / ("extract_long.json" if args.long else "extract.json")
    return args


def write_video(
    path: Path, args: argparse.Namespace, seed: int, seconds: float | None = None,
    gop: int | None = None,
) -> Path:
    """H.264 video of a drifting gradient, a moving square and pixel noise; ``gop``: frames
    from one keyframe to the next at most (None: x264's default, 250)."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0 : args.height, 0 : args.width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=args.rate, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = args.width, args.height, "yuv420p"
        if gop is not None:
            stream.codec_context.gop_size = gop
        for index in range(round((seconds or args.seconds) * args.rate)):
            image = np.empty((args.height, args.width, 3), np.uint8)
            image[..., 0] = (columns + 3 * index + seed * 40) % 256
            image[..., 1] = (rows + 2 * index) % 256
            image[..., 2] = 128
            top, left = (5 * index) % (args.height - 60), (7 * index) % (args.width - 60)
            image[top : top + 60, left : left + 60] = (240, 240, 40)
            image += rng.integers(0, 16, image.shape, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def time_decoding(paths: list[Path], sampling: FrameSampling, short_side, backbone) -> dict:
    """Decode every video (and transform its frames); -> timings and the decoded frames."""
    decoded_frames = sampled_frames = 0
    decode_seconds = transform_seconds = 0.0
    videos = []
    for path in paths:
        started = time.perf_counter()
        decoded = decode_video(
            path,
            sampling,
            short_side=short_side,
            interpolation=backbone.transform.interpolation,
            threads=1,
        )
        decode_seconds += time.perf_counter() - started
        started = time.perf_counter()
        backbone.transform(torch.from_numpy(decoded.frames))  # (frames, 3, 224, 224)
        transform_seconds += time.perf_counter() - started
        decoded_frames += decoded.decoded_frames
        sampled_frames += len(decoded.frames)
        videos.append(decoded.frames)
    return {
        "short_side": short_side,
        "frame_size": list(videos[0].shape[1:3]),
        "decoded_frames": decoded_frames,
        "sampled_frames": sampled_frames,
        "decode_seconds": round(decode_seconds, 3),
        "decoded_frames_per_s": round(decoded_frames / decode_seconds, 1),
        "sampled_frames_per_s": round(sampled_frames / decode_seconds, 1),
        "transform_ms_per_frame": round(1000 * transform_seconds / sampled_frames, 3),
        "frames": videos,
    }


def time_model(backbone, videos: list[np.ndarray], args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    embed_frames(backbone, videos[0][: args.batch_size], args.batch_size, device)  # warm-up
    started = time.perf_counter()
    frames = sum(len(embed_frames(backbone, v, args.batch_size, device)) for v in videos)
    seconds = time.perf_counter() - started
    return {"frames": frames, "seconds": round(seconds, 2), "frames_per_s": frames / seconds}


def time_end_to_end(backbone, video_dir: Path, work: Path, args: argparse.Namespace) -> dict:
    out = Path(tempfile.mkdtemp(dir=work))
    started = time.perf_counter()
    summary = extract_features(
        video_dir,
        out,
        backbone,
        max_frames=args.max_frames,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        progress=False,
    )
    seconds = time.perf_counter() - started
    if summary.failed:
        raise RuntimeError(f"extraction failed: {summary.failed}")
    frames = summary.total_frames
    return {
        "frames": frames,
        "seconds": round(seconds, 2),
        "frames_per_s": frames / seconds,
        "loop_seconds": round(summary.seconds, 2),  # without fingerprint and final merge
    }


def time_long_videos(args: argparse.Namespace) -> dict:
    """Decoding a long video without and with seeking, per keyframe interval and sampling."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="mcsan-extract-long-") as temporary:
        for gop in args.gops:
            started = time.perf_counter()
            path = write_video(Path(temporary) / f"long-{gop}.mp4", args, 0, args.long_seconds, gop)
            print(f"wrote a {args.long_seconds:.0f} s video, a keyframe every {gop} frames at "
                  f"most, in {time.perf_counter() - started:.1f} s")
            for name, sampling in LONG_SAMPLINGS.items():
                before = time_long_decoding(path, sampling, seeking=False)
                after = time_long_decoding(path, sampling, seeking=True)
                results[f"gop {gop}, {name}"] = {"before": before, "after": after}
                print(f"gop {gop}, {name}: {before['decoded_frames']} -> "
                      f"{after['decoded_frames']} frames decoded ({after['seeks']} seeks), "
                      f"{before['sampled_frames_per_s']:.0f} -> "
                      f"{after['sampled_frames_per_s']:.0f} sampled frames/s")
    return results


def time_long_decoding(path: Path, sampling: FrameSampling, seeking: bool) -> dict:
    """decode_video as ``extract`` calls it (resize 256, one FFmpeg thread), the faster of two."""
    share = decode.SEEK_SHARE
    decode.SEEK_SHARE = share if seeking else 0  # 0: seeking never pays
    try:
        seconds = []
        for _ in range(2):
            started = time.perf_counter()
            decoded = decode_video(path, sampling, short_side=256, threads=1)
            seconds.append(time.perf_counter() - started)
    finally:
        decode.SEEK_SHARE = share
    best = min(seconds)
    return {
        "sampled_frames": len(decoded.frames),
        "total_frames": decoded.total_frames,
        "decoded_frames": decoded.decoded_frames,
        "seeks": decoded.seeks,
        "seconds": round(best, 3),
        "sampled_frames_per_s": round(len(decoded.frames) / best, 1),
        "decoded_frames_per_s": round(decoded.decoded_frames / best, 1),
    }


def machine_info(args: argparse.Namespace) -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "av": av.__version__,
        "device": args.device,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def write_report(args: argparse.Namespace, argv: list[str] | None, report: dict) -> None:
    command = " ".join(["python benchmarks/extract.py", *(sys.argv[1:] if argv is None else argv)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": command, **report}, indent=2) + "\n",
                        encoding="utf-8")
    print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.long:
        machine = machine_info(args)
        setup = {"seconds": args.long_seconds, "rate": args.rate,
                 "size": [args.width, args.height], "codec": "libx264 (preset veryfast)",
                 "gops": args.gops, "resize": 256, "ffmpeg_threads": 1}
        results = time_long_videos(args)
        machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        write_report(args, argv, {"machine": machine, "setup": setup, "long_video": results})
        return 0
    torch.manual_seed(0)
    backbone = build_backbone(args.backbone, args.weights, random_init=args.weights is None)
    backbone = backbone.to(args.device)
    machine = machine_info(args)
    sampling = FrameSampling("uniform", args.max_frames)
    with tempfile.TemporaryDirectory(prefix="mcsan-extract-bench-") as temporary:
        work = Path(temporary)
        video_dir = work / "videos"
        video_dir.mkdir()
        started = time.perf_counter()
        paths = [write_video(video_dir / f"video{n:03d}.mp4", args, n) for n in range(args.videos)]
        print(f"wrote {len(paths)} videos in {time.perf_counter() - started:.1f} s")

        scaled = time_decoding(paths, sampling, backbone.transform.resize, backbone)
        native = time_decoding(paths, sampling, None, backbone)
        videos = scaled.pop("frames")
        native.pop("frames")
        model_before = time_model(backbone, videos, args)
        end_to_end = time_end_to_end(backbone, video_dir, work, args)
        model_after = time_model(backbone, videos, args)
    model_rate = (model_before["frames_per_s"] + model_after["frames_per_s"]) / 2
    ratio = end_to_end["frames_per_s"] / model_rate
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report = {
        "machine": machine,
        "setup": {
            "videos": args.videos,
            "seconds": args.seconds,
            "rate": args.rate,
            "size": [args.width, args.height],
            "codec": "libx264 (preset veryfast)",
            "backbone": args.backbone,
            "weights": str(args.weights or "random"),
            "crop": backbone.transform.size,
            "resize": backbone.transform.resize,
            "max_frames": args.max_frames,
            "batch_size": args.batch_size,
            "workers": args.workers,
        },
        "decode": {"ffmpeg_scaled": scaled, "native_size": native},
        "model": {"before": model_before, "after": model_after, "frames_per_s": model_rate},
        "end_to_end": end_to_end,
        "end_to_end_over_model": round(ratio, 3),
        "goal": GOAL,
    }
    print(
        f"decode (FFmpeg scales to {scaled['short_side']}): "
        f"{scaled['decoded_frames_per_s']:.0f} decoded frames/s, "
        f"{scaled['sampled_frames_per_s']:.0f} sampled frames/s; transform "
        f"{scaled['transform_ms_per_frame']:.2f} ms/frame"
    )
    print(
        f"decode (stored size):        {native['decoded_frames_per_s']:.0f} decoded frames/s, "
        f"{native['sampled_frames_per_s']:.0f} sampled frames/s; transform "
        f"{native['transform_ms_per_frame']:.2f} ms/frame"
    )
    print(
        f"model only: {model_before['frames_per_s']:.1f} / {model_after['frames_per_s']:.1f} "
        f"frames/s (before / after)"
    )
    print(
        f"end to end: {end_to_end['frames_per_s']:.1f} frames/s = {ratio:.0%} of model only "
        f"(goal {GOAL:.0%}); load average {machine['load_average_at_start']} -> "
        f"{machine['load_average_at_end']}"
    )
    write_report(args, argv, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
