"""The ``mcsan`` command line: thin wrappers that parse arguments and call library functions."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mcsan import __version__

# the names of mcsan.extract's BACKBONES, SAMPLINGS and FEATURE_LAYOUTS, spelled out so that
# the command line starts without importing torch (tests/test_extract.py checks they agree)
EXTRACT_BACKBONES = ("resnet50", "resnet101", "resnet152", "clip-vit-b-32", "clip-vit-b-16",
                     "clip-vit-l-14", "clip-vit")
EXTRACT_SAMPLINGS = ("uniform", "fps")
EXTRACT_LAYOUTS = ("hdf5", "hgr", "bigfile")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        print(f"\nmcsan {args.command}: interrupted; {interrupted_note(args)}", file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, KeyError, ValueError, RuntimeError) as error:
        # a KeyError's str() is the repr of its message: print the message itself
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"mcsan {args.command}: error: {message}", file=sys.stderr)
        return 1


def interrupted_note(args: argparse.Namespace) -> str:
    """What an interrupted command left, and how to go on."""
    if args.command == "train":
        out = next((o.split("=", 1)[1] for o in getattr(args, "overrides", [])
                    if o.startswith("train.out_dir=")), "train.out_dir")
        return (f"every finished epoch is saved in {out}/last (and the best in {out}/best); "
                "run the same command with --resume to continue")
    if args.command == "prepare":
        return (f"nothing in {args.out} was replaced; run the same command again (captions "
                "parsed by an earlier finished run come from its cache)")
    if args.command == "extract":
        return (f"every finished video is kept under {args.out}; run the same command again to "
                "extract the rest")
    if args.command == "index":
        return f"{args.out} is as it was before this run; run the command again"
    return "nothing else to do"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcsan", description="MCSAN video-text retrieval: prepare captioned videos, train, "
        "evaluate, then index a video collection and search it with sentences "
        "(`mcsan COMMAND --help` for each).")
    parser.add_argument("--version", action="version", version=f"mcsan {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    synth = commands.add_parser("synth", help="write the synthetic compositional benchmark")
    synth.add_argument("out", type=Path, help="output directory (HGR layout)")
    synth.add_argument("--size", default="small", help="preset: tiny, small, default, msrvtt")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                       help="change one SynthConfig field, e.g. --set noise=0.5 (repeatable)")
    synth.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    synth.set_defaults(handler=run_synth)

    info = commands.add_parser("info", help="detect a dataset's layout, validate it, print stats")
    info.add_argument("root", type=Path)
    info.add_argument("--layout", default="auto")
    info.add_argument("--skip-invalid", action="store_true",
                      help="skip invalid items (each is counted and listed) instead of failing")
    info.set_defaults(handler=run_info)

    prepare = commands.add_parser("prepare", help="parse captions once; build vocabularies")
    prepare.add_argument("root", type=Path, help="dataset directory (any supported layout)")
    prepare.add_argument("--out", type=Path, required=True, help="prepared-data directory")
    prepare.add_argument("--layout", default="auto")
    prepare.add_argument("--config", type=Path, help="config file whose vocab section to use")
    prepare.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="KEY=VALUE",
                         help="config override, e.g. --set vocab.min_count=5 (repeatable)")
    prepare.add_argument("--vocab-from", type=Path, metavar="CHECKPOINT",
                         help="use a trained checkpoint's vocabularies instead of building them "
                              "(to evaluate that model on this dataset)")
    prepare.add_argument("--n-process", type=int, default=1, help="spaCy worker processes")
    prepare.add_argument("--skip-invalid", action="store_true")
    prepare.set_defaults(handler=run_prepare)

    train = commands.add_parser("train", help="train MCSAN")
    train.add_argument("--config", type=Path, help="JSON or YAML config file")
    train.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=1e-4")
    train.add_argument("--resume", action="store_true", help="continue the run in train.out_dir")
    train.add_argument("--print-config", action="store_true",
                       help="print the resolved config as YAML (a file to start from) and exit")
    train.add_argument("--processes", type=int, default=1, metavar="N",
                       help="train in N processes on this machine (torchrun: one per GPU, or "
                            "gloo on the CPU); train.batch_size stays the global batch")
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a checkpoint on a split")
    evaluate.add_argument("checkpoint", type=Path, help="checkpoint directory")
    evaluate.add_argument("--split", default=None, help="split to evaluate (default: eval.split)")
    evaluate.add_argument("--data", type=Path, help="dataset directory (default: the training one)")
    evaluate.add_argument("--prepared", type=Path, help="prepared-data directory")
    evaluate.add_argument("--out", type=Path, help="write the results JSON here")
    evaluate.add_argument("--threads", type=int, default=0,
                          help="CPU threads for torch (default: one per idle core)")
    evaluate.set_defaults(handler=run_evaluate)

    calibrate = commands.add_parser(
        "calibrate", help="choose a checkpoint's fusion weights on the validation split",
        description="Score every combination of --grid weights for the levels of the fused "
        "score s = sum_l w_l cos_l on a validation split (the global level fixed at 1) and write "
        "the best into the checkpoint's config.json, so that evaluate and everything else that "
        "loads it use them; the trained weights are kept unless a combination beats them. "
        "CHECKPOINT/calibration.json records the trained weights and every combination's rsum; "
        "calibrating again starts from the trained weights.")
    calibrate.add_argument("checkpoint", type=Path, help="checkpoint directory")
    calibrate.add_argument("--split", default="val",
                           help="split to choose on (default val; never the test split)")
    calibrate.add_argument("--grid", type=float, nargs="+", default=None, metavar="W",
                           help="weights to try for each level (default: 0 0.5 1 2)")
    calibrate.add_argument("--data", type=Path, help="dataset directory (default: the training one)")
    calibrate.add_argument("--prepared", type=Path, help="prepared-data directory")
    calibrate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    calibrate.add_argument("--threads", type=int, default=0,
                           help="CPU threads for torch (default: one per idle core)")
    calibrate.add_argument("--dry-run", action="store_true",
                           help="report the choice without changing the checkpoint")
    calibrate.add_argument("--out", type=Path, help="also write the calibration JSON here")
    calibrate.set_defaults(handler=run_calibrate)

    extract = commands.add_parser(
        "extract", help="extract frame features from video files (resumable)",
        description="Decode videos, run a frame backbone, write (frames, dim) features per "
        "video to OUT/<feature>.hdf5 (the features/<ft>.hdf5 of an MSR-VTT or VATEX root); "
        "with --layout hgr|bigfile also a dataset OUT/hgr or OUT/bigfile from --dataset's "
        "splits and captions. Videos already in the output are skipped; failures are listed "
        "in OUT/<feature>.failures.json, and the command exits with status 1 if any video "
        "failed (see --allow-failures).")
    extract.add_argument("videos", nargs="+", type=Path, metavar="VIDEOS",
                         help="video files, or directories scanned recursively; a video's id "
                         "is its file name without the extension")
    extract.add_argument("--out", type=Path, required=True, help="output directory")
    extract.add_argument("--backbone", default="resnet152", choices=EXTRACT_BACKBONES)
    extract.add_argument("--weights", type=Path,
                         help="the backbone's weights file (torchvision .pth, OpenAI CLIP .pt, "
                         ".safetensors); nothing is downloaded")
    extract.add_argument("--random-weights", action="store_true",
                         help="randomly initialised backbone (seed 0), for tests and benchmarks")
    extract.add_argument("--sampling", default="uniform", choices=EXTRACT_SAMPLINGS,
                         help="uniform: --max-frames frames spread over the video; fps: --fps "
                         "frames per second, evenly thinned to --max-frames")
    extract.add_argument("--fps", type=float, help="frames per second (with --sampling fps)")
    extract.add_argument("--max-frames", type=int, default=32,
                         help="frames per video at most (default 32; training resamples to "
                         "data.max_frames)")
    extract.add_argument("--batch-size", type=int, default=32, help="frames per model batch")
    extract.add_argument("--workers", type=int, default=2,
                         help="decoding processes (0: decode in the main process)")
    extract.add_argument("--feature-name", help="feature type name (default: the backbone's)")
    extract.add_argument("--layout", default="hdf5", choices=EXTRACT_LAYOUTS)
    extract.add_argument("--dataset", type=Path,
                         help="annotation root for --layout hgr|bigfile (any layout mcsan reads)")
    extract.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    extract.add_argument("--threads", type=int, default=0,
                         help="CPU threads for torch (default: one per idle core)")
    extract.add_argument("--allow-failures", action="store_true",
                         help="exit with status 0 even if some videos failed, as long as one "
                         "has features (the failures are still listed)")
    extract.add_argument("--quiet", action="store_true", help="no progress bar")
    extract.set_defaults(handler=run_extract)

    index = commands.add_parser(
        "index", help="encode a video collection with a trained model into a search index",
        description="Encode every video of FEATURES with the model of CHECKPOINT and write an "
        "index directory that `mcsan search` answers text queries from. FEATURES is a dataset "
        "directory in any layout mcsan reads (every split, or those named by --split; no "
        "captions needed) or the HDF5 file that `mcsan extract` writes for a folder of videos. "
        "Features made with another extraction recipe than the model's training features are "
        "refused.")
    index.add_argument("checkpoint", type=Path, help="checkpoint directory (runs/x/best)")
    index.add_argument("features", type=Path, help="dataset directory or extracted .hdf5 file")
    index.add_argument("--out", type=Path, required=True, help="index directory")
    index.add_argument("--add", action="store_true",
                       help="add the videos not yet in the existing index --out (the model "
                       "must be the index's)")
    index.add_argument("--split", dest="splits", action="append", metavar="NAME",
                       help="index this split of a dataset (repeatable; default: every split)")
    index.add_argument("--kind", default="auto", choices=("auto", "flat", "ivf"),
                       help="FAISS index: flat (exact) or ivf (approximate, re-scored "
                       "exactly); auto: flat below 50,000 videos")
    index.add_argument("--nlist", type=int, help="IVF cells (default: about sqrt(videos))")
    index.add_argument("--allow-other-recipe", action="store_true",
                       help="index features whose extraction recipe differs from the model's")
    index.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    index.add_argument("--threads", type=int, default=0,
                       help="CPU threads for torch (default: one per idle core)")
    index.add_argument("--quiet", action="store_true", help="no progress bars")
    index.set_defaults(handler=run_index)

    search = commands.add_parser(
        "search", help="find the videos of an index that match a sentence",
        description="Rank the videos of INDEX_DIR for each query and show why each matched: "
        "the fused score, each level's score, and the query's parsed entities, actions and "
        "relationships beside the video's predicted attributes that match them.")
    search.add_argument("index", type=Path, help="index directory written by `mcsan index`")
    search.add_argument("query", nargs="?", help="the sentence to search for")
    search.add_argument("-k", type=int, default=10, help="results per query (default 10)")
    search.add_argument("--queries", type=Path, metavar="FILE",
                        help="a text file of queries, one a line")
    search.add_argument("--weights", metavar="LEVEL=W,...",
                        help="re-weight levels for this search, e.g. entity=2,relationship=1 "
                        "(the others keep the model's weights)")
    search.add_argument("--json", action="store_true",
                        help="print the results as JSON (schema in the README)")
    search.add_argument("--nprobe", type=int, help="IVF cells visited per query (ivf indexes)")
    search.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    search.set_defaults(handler=run_search)

    serve = commands.add_parser(
        "serve", help="search an index over HTTP, with a web page",
        description="Serve INDEX_DIR: a search page at /, the API (POST /search, GET "
        "/videos/{id}, /videos/{id}/media, /health, /metrics) documented at /docs.")
    serve.add_argument("index", type=Path, help="index directory written by `mcsan index`")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--token-file", type=Path,
                       help="require 'Authorization: Bearer <token>' with the token in this "
                       "file (or set MCSAN_TOKEN)")
    serve.add_argument("--cors-origin", dest="cors_origins", action="append", metavar="URL",
                       help="allow browser requests from this origin (repeatable; default none)")
    serve.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    serve.set_defaults(handler=run_serve)

    demo = commands.add_parser("demo", help="the main job on the built-in synthetic benchmark")
    demo.add_argument("--out", type=Path, default=Path("demo_out"))
    demo.add_argument("--size", default="small")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--threads", type=int, default=0,
                      help="CPU threads for torch (default: one per idle core)")
    demo.set_defaults(handler=run_demo)
    return parser


def run_synth(args: argparse.Namespace) -> int:
    from mcsan.data.synth import synth_config, write_synth

    config = synth_config(args.size, args.settings, seed=args.seed)
    root = write_synth(args.out, config, overwrite=args.overwrite)
    print(f"wrote the synthetic benchmark ({args.size}, seed {args.seed}) to {root}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from mcsan.data.layouts import read_dataset

    dataset = read_dataset(args.root, args.layout, skip_invalid=args.skip_invalid)
    print(f"{dataset.root}: {dataset.layout} layout")
    for split in dataset:
        print(f"  {split}")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from mcsan.config import Config, apply_overrides
    from mcsan.data.layouts import read_dataset_with_report
    from mcsan.data.prepare import SKIPPED_FILE, prepare

    config = Config.load(args.config) if args.config else Config()
    config = apply_overrides(config, args.overrides)
    vocabularies = None
    if args.vocab_from:
        from mcsan.checkpoint import load_checkpoint_vocab

        vocabularies = load_checkpoint_vocab(args.vocab_from)
    dataset, report = read_dataset_with_report(args.root, args.layout,
                                               skip_invalid=args.skip_invalid)
    prepare(dataset, args.out, config.vocab, n_process=args.n_process, vocabularies=vocabularies)
    if report.skipped:
        listed = args.out / SKIPPED_FILE
        listed.write_text(json.dumps([vars(item) for item in report.skipped], indent=1) + "\n",
                          encoding="utf-8")
        print(f"{len(report.skipped)} invalid item(s) were skipped; every one is listed in "
              f"{listed}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from mcsan.config import Config, apply_overrides
    from mcsan.train import train

    config = Config.load(args.config, args.overrides) if args.config else apply_overrides(
        Config(), args.overrides
    )
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    if args.processes < 1:
        raise ValueError(f"--processes {args.processes}: give 1 or more")
    if args.processes > 1 and "WORLD_SIZE" not in os.environ:
        return launch_processes(args)
    result = train(config, resume=args.resume)
    if os.environ.get("RANK", "0") != "0":  # one of several processes: the first one reports
        return 0
    print(f"best validation rsum {result.best_rsum:.2f}; checkpoints in {result.run_dir}")
    if config.train.calibrate_fusion:  # also after a resumed run that had nothing left to train
        from mcsan.calibrate import calibrate_checkpoint

        print(calibrate_checkpoint(result.best_dir, device=config.train.device).describe())
    return 0


def launch_processes(args: argparse.Namespace) -> int:
    """``mcsan train --processes N``: the same command in N processes under torchrun, on this
    machine (``--standalone``: a free local port); its exit status."""
    from torch.distributed.run import get_args_parser, run

    command = ["train", *([f"--config={args.config}"] if args.config else []),
               *(["--resume"] if args.resume else []), *args.overrides]
    launcher = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={args.processes}", "-m", "mcsan", *command]
    )
    try:
        run(launcher)
    except Exception as error:  # torchrun's ChildFailedError: the failed process printed why
        print(f"mcsan train: {type(error).__name__}: a training process failed (see its "
              "output above)", file=sys.stderr)
        return 1
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from mcsan.evaluate import evaluate_checkpoint, results_table, write_results
    from mcsan.runtime import configure_threads

    configure_threads(args.threads)  # on a busy machine two spinning threads cost 10x or more
    results = evaluate_checkpoint(
        args.checkpoint, split=args.split, data_root=args.data, prepared_dir=args.prepared
    )
    print(results_table(results))
    if args.out:
        write_results(results, args.out)
        print(f"results written to {args.out}")
    else:
        print(json.dumps(results["fused"], indent=2))
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from mcsan.calibrate import DEFAULT_GRID, calibrate_checkpoint
    from mcsan.runtime import configure_threads

    configure_threads(args.threads)
    calibration = calibrate_checkpoint(
        args.checkpoint, split=args.split, grid=args.grid or DEFAULT_GRID, data_root=args.data,
        prepared_dir=args.prepared, device=args.device, write=not args.dry_run,
    )
    print(calibration.describe())
    if args.dry_run:
        print(f"dry run: {args.checkpoint} is unchanged")
    elif calibration.changed:
        print(f"wrote the chosen weights into {args.checkpoint / 'config.json'}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(calibration.to_json(), indent=2) + "\n", encoding="utf-8")
        print(f"calibration written to {args.out}")
    return 0


def run_extract(args: argparse.Namespace) -> int:
    import torch

    from mcsan.extract import build_backbone, extract_features
    from mcsan.runtime import configure_threads

    configure_threads(args.threads)
    torch.manual_seed(0)  # --random-weights: the same features on every run
    backbone = build_backbone(args.backbone, args.weights, random_init=args.random_weights)
    summary = extract_features(
        args.videos, args.out, backbone, sampling=args.sampling, fps=args.fps,
        max_frames=args.max_frames, batch_size=args.batch_size, workers=args.workers,
        feature_name=args.feature_name, layout=args.layout, dataset_root=args.dataset,
        device=args.device, progress=not args.quiet,
        weights_label=str(args.weights) if args.weights else "random initialisation, seed 0",
    )
    print(summary.describe())
    if not summary.failed or (args.allow_failures and (summary.extracted or summary.skipped)):
        return 0
    return 1


def run_index(args: argparse.Namespace) -> int:
    from mcsan.index import add_to_index, build_index
    from mcsan.retriever import load
    from mcsan.runtime import configure_threads
    from mcsan.sources import open_source

    configure_threads(args.threads)
    source = open_source(args.features, args.splits, progress=not args.quiet)
    if args.add:
        added, present = add_to_index(args.out, source, checkpoint=args.checkpoint,
                                      allow_other_recipe=args.allow_other_recipe,
                                      device=args.device, progress=not args.quiet)
        print(f"added {added} video(s) to {args.out}; {present} were already in it")
        return 0
    retriever = load(args.checkpoint, args.device)
    build_index(retriever, source, args.out, kind=args.kind, nlist=args.nlist,
                allow_other_recipe=args.allow_other_recipe, progress=not args.quiet)
    print(f"indexed {len(source.video_ids)} video(s) of {source.description} in {args.out}")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from mcsan.index import open_index
    from mcsan.search_output import format_results, parse_weights, results_json

    queries = [args.query] if args.query is not None else []
    if args.queries:
        if not args.queries.is_file():
            raise FileNotFoundError(f"queries file {args.queries} does not exist")
        lines = args.queries.read_text(encoding="utf-8").splitlines()
        queries += [line.strip() for line in lines if line.strip()]
    if not queries:
        raise ValueError('give a query ("a dog chases a cat") or --queries FILE')
    weights = parse_weights(args.weights)
    index = open_index(args.index, device=args.device)
    results = index.search(queries, k=args.k, weights=weights, nprobe=args.nprobe)
    if args.json:
        print(json.dumps(results_json(index, results, args.k), indent=2))
    else:
        print(format_results(results))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from mcsan.serve import read_token, run_server

    run_server(args.index, host=args.host, port=args.port, token=read_token(args.token_file),
               cors_origins=args.cors_origins, device=args.device)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from mcsan.demo import run_demo as demo

    demo(args.out, size=args.size, seed=args.seed, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
