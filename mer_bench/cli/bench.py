"""``mer-bench bench``."""

from __future__ import annotations

import json

from mer_bench.cli.options import add_device, add_json, add_overrides


def add_parser(sub) -> None:
    bn = sub.add_parser("bench", help="training throughput: plain fp32 eager against the optimised path, same run",
                        description="Time training steps of METHOD's network on random inputs: plain (fp32, eager) "
                                    "and optimised (bf16 autocast where native and faster, channels-last, "
                                    "cudnn.benchmark, optional torch.compile; on a CPU mer-bench's fused kernels, "
                                    "dropout masks and fused Adam); prints both, the speed-up and the achieved FLOP/s.")
    bn.add_argument("--method", default="meranet")
    bn.add_argument("--preset", default=None, help="default: the method's defaults (MERANet: the paper's size)")
    add_overrides(bn)
    bn.add_argument("--batch-size", type=int, default=None)
    bn.add_argument("--steps", type=int, default=5)
    bn.add_argument("--warmup", type=int, default=2)
    add_device(bn)
    bn.add_argument("--compile", action="store_true", help="torch.compile the optimised path")
    bn.add_argument("--stack-folds", type=int, default=None, metavar="K",
                    help="instead: train K folds fold by fold and stacked (torch.func), same run, and compare")
    bn.add_argument("--train-size", type=int, default=64, help="with --stack-folds: training samples per fold")
    bn.add_argument("--epochs", type=int, default=2, help="with --stack-folds: epochs per fold")
    add_json(bn)
    bn.set_defaults(handler=main)


def main(args) -> int:
    from mer_bench.bench import compare_paths, describe_paths, describe_stacking
    from mer_bench.method import parse_overrides

    if args.steps < 1 or args.warmup < 0 or (args.batch_size is not None and args.batch_size < 1):
        raise ValueError("--steps and --batch-size must be >= 1 and --warmup >= 0")
    if args.stack_folds is not None:
        from mer_bench.bench import compare_stacking

        res = compare_stacking(args.method, folds=args.stack_folds, n_train=args.train_size, epochs=args.epochs,
                               preset=args.preset, overrides=parse_overrides(args.overrides or []),
                               batch_size=args.batch_size, device=args.device)
        if args.json:
            print(json.dumps(res, indent=2))
            return 0
        print(describe_stacking(res))
        return 0
    res = compare_paths(args.method, preset=args.preset, overrides=parse_overrides(args.overrides or []),
                        batch_size=args.batch_size, steps=args.steps, warmup=args.warmup, device=args.device,
                        compile=args.compile)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(describe_paths(res))
    return 0
