"""
Cost of a model against its reference on the same backbone, on the CPU. Two comparisons (`--compare`):

- `dlfa` (default): a DLFA head against the stock head of the encoder family (`--family`: BERT by default, or any
  family of `ENCODER_FAMILIES`, each built from its own config at the given shape, random weights), on an
  mBERT-base-shaped backbone unless told otherwise;
- `layer-search`: the one-pass layer search (`dlfa_zero_shot.layer_search.DLFAForLayerSearch`, on the `--family`;
  one head per `--search-layers` plus the last-layer head) against one ordinary DLFA run at `--fusion-layer`, i.e. the extra cost of searching over training one model.

Both models live in one process and run alternately (which one goes first alternates too); each ratio is the
candidate's time over the reference's within one pair, and the report gives the median, min and max over the pairs,
of wall-clock time and of the process's CPU time (which leaves out waiting for a core: the machine's load average at
start and end is recorded, as other jobs on the cores make the wall-clock ratios noisy), with the exact FLOP ratio from `torch.utils.flop_counter.FlopCounterMode` beside it as the noise-free figure, and both
parameter counts. Peak memory of a training step is measured in fresh subprocesses (peak resident set size above the
size after building the model), again alternating, and the exact ratio of the bytes autograd saves for backward is
given beside it: each storage once (`held`, what memory holds) and every save counted (`per_save`, the earlier
measure, which counts a tensor saved by three operations three times).

    python benchmarks/overhead.py                      # batch 8 x 128, token classification, 10 pairs
    python benchmarks/overhead.py --head sequence --batch-size 16 --seq-length 64 --pairs 20
    python benchmarks/overhead.py --compare layer-search --hidden-size 384 --batch-size 32 --pairs 10
    python benchmarks/overhead.py --family xlm-roberta --hidden-size 384    # the e5-small size, XLM-R's modules

The cost table (README.md): every family of `ENCODER_FAMILIES`, one after another in one process (each family's two
models side by side as above), archived with what made it, and printed from the archive:

    python benchmarks/overhead.py --family all --hidden-size 384 --fusion-layer 11 --pairs 20 --threads 2 \
        --output benchmarks/results/overhead_family/cost_table.json
    python benchmarks/overhead.py --show benchmarks/results/overhead_family/cost_table.json
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoConfig, BertConfig, PreTrainedConfig, PreTrainedModel

from dlfa_zero_shot import provenance
from dlfa_zero_shot.files import write_atomically
from dlfa_zero_shot.heads import head_class
from dlfa_zero_shot.layer_search import DLFAForLayerSearch
from modeling_dlfa import ENCODER_FAMILIES, DLFABertConfig, DLFAConfig
from modeling_dlfa.configuration_dlfa import AIF_GATES, AIF_NORMS


ALL_FAMILIES = "all"  # --family: the cost table, every family of ENCODER_FAMILIES in one process
COMPARISONS = {"dlfa": ("bert", "dlfa"), "layer-search": ("dlfa", "layer_search")}  # --compare: (reference, candidate)
HEAD_KINDS = ("token", "sequence")
# What a family's config needs, beyond the shared shape, to be that shape (DistilBERT's feed-forward size has its own
# name) or the multilingual checkpoint it stands for (mDeBERTa-v3's relative attention with position buckets).
FAMILY_SHAPES = {
    "distilbert": lambda hidden: {"hidden_dim": 4 * hidden},
    "deberta-v2": lambda hidden: {
        "relative_attention": True,
        "position_buckets": 256,
        "pos_att_type": ["p2c", "c2p"],
        "position_biased_input": False,
    },
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", choices=sorted(COMPARISONS), default="dlfa", help="candidate vs reference")
    parser.add_argument("--head", choices=HEAD_KINDS, default="token")
    parser.add_argument(
        "--family",
        choices=[*sorted(ENCODER_FAMILIES), ALL_FAMILIES],
        default="bert",
        help=f"the encoder family; {ALL_FAMILIES!r}: the cost table, every family in one process",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=12)
    parser.add_argument("--hidden-size", type=int, default=768)
    parser.add_argument("--vocab-size", type=int, default=8000, help="small: the embedding lookup costs no time")
    parser.add_argument("--fusion-layer", type=int, default=8)
    parser.add_argument("--search-layers", default="2,4,6,8,10,11", help="the layer search's candidates")
    parser.add_argument("--aif-reduction", type=int, default=4)
    parser.add_argument("--aif-gate", choices=AIF_GATES, default=DLFABertConfig.aif_gate)
    parser.add_argument("--aif-norm", choices=AIF_NORMS, default=DLFABertConfig.aif_norm)
    parser.add_argument("--pairs", type=int, default=10, help="timed pairs per measurement (at least 10)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--memory-pairs", type=int, default=3, help="subprocess pairs for peak memory (0: skip)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output", type=Path, help="also write the JSON report here")
    parser.add_argument("--show", type=Path, help="print the cost table of an archive (--family all) and exit")
    parser.add_argument("--memory-probe", choices=["reference", "candidate"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pairs < 10:
        parser.error(f"--pairs must be at least 10 for a meaningful median, got {args.pairs}")
    if args.family == ALL_FAMILIES and args.compare != "dlfa":
        parser.error(f"--family {ALL_FAMILIES} is the cost table of --compare dlfa, not of --compare {args.compare}")
    return args


def build_models(args: argparse.Namespace):
    """The reference and the candidate of `args.compare`, sharing every weight they have in common."""
    shape = dict(
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.num_layers,
        num_attention_heads=args.hidden_size // 64,
        intermediate_size=4 * args.hidden_size,
        num_labels=7,
    )
    if args.family != "bert":
        return build_family_models(args, shape)
    auto_class = head_class(args.head)
    torch.manual_seed(0)
    bert = auto_class.from_config(BertConfig(**shape))
    dlfa_config = DLFABertConfig(
        **shape,
        fusion_layer=args.fusion_layer,
        aif_reduction=args.aif_reduction,
        aif_gate=args.aif_gate,
        aif_norm=args.aif_norm,
    )
    dlfa = auto_class.from_config(dlfa_config)
    # DLFA pools the fused [CLS] state with the same weights as BERT's pooler, as `pooler`.
    state = {
        (key.removeprefix("bert.") if key.startswith("bert.pooler.") else key): value
        for key, value in bert.state_dict().items()
    }
    missing, unexpected = dlfa.load_state_dict(state, strict=False)
    assert not unexpected and all(key.startswith("fusion.") for key in missing), (missing, unexpected)
    if args.compare == "dlfa":
        return bert, dlfa
    search = layer_search(args, dlfa.config)
    missing, unexpected = search.load_state_dict(
        {key: value for key, value in dlfa.state_dict().items() if key.startswith(("bert.", "pooler."))},
        strict=False,
    )
    assert not unexpected and all(key.startswith(("fusions.", "classifiers.")) for key in missing), missing
    return dlfa, search


def layer_search(args: argparse.Namespace, dlfa_config: PreTrainedConfig) -> PreTrainedModel:
    """The family's one-pass search over `--search-layers` with `dlfa_config`'s settings, its heads new."""
    search_config = type(dlfa_config).from_dict(
        {**dlfa_config.to_dict(), "search_layers": [int(layer) for layer in args.search_layers.split(",")],
         "search_problem": args.head}
    )  # fmt: skip
    return DLFAForLayerSearch(search_config)


def build_family_models(args: argparse.Namespace, shape: dict):
    """The family's stock head and the generic DLFA head on the same encoder weights (`--family` other than BERT)."""
    encoder_config = AutoConfig.for_model(
        args.family, **shape, **FAMILY_SHAPES.get(args.family, lambda hidden: {})(args.hidden_size)
    )
    auto_class = head_class(args.head)
    torch.manual_seed(0)
    stock = auto_class.from_config(encoder_config)
    dlfa = auto_class.from_config(DLFAConfig(
        encoder_config=encoder_config, num_labels=shape["num_labels"], fusion_layer=args.fusion_layer,
        aif_reduction=args.aif_reduction, aif_gate=args.aif_gate, aif_norm=args.aif_norm,
    ))  # fmt: skip
    encoder = {key: value for key, value in stock.state_dict().items() if key.startswith(f"{dlfa.base_model_prefix}.")}
    missing, unexpected = dlfa.load_state_dict(encoder, strict=False)
    assert not unexpected and not any(key.startswith(f"{dlfa.base_model_prefix}.") for key in missing), missing
    if args.compare == "dlfa":
        return stock, dlfa
    search = layer_search(args, dlfa.config)
    missing, unexpected = search.load_state_dict(encoder, strict=False)
    assert not unexpected and all(key.startswith(("fusions.", "classifiers.", "pooler.")) for key in missing), missing
    return dlfa, search


def make_batch(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, args.vocab_size, (args.batch_size, args.seq_length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    # Realistic padding: row i keeps a different share of its tokens.
    for row in range(args.batch_size):
        attention_mask[row, args.seq_length - (row * args.seq_length) // (2 * args.batch_size) :] = 0
    if args.head == "token":
        labels = torch.randint(0, 7, input_ids.shape, generator=generator).masked_fill(attention_mask == 0, -100)
    else:
        labels = torch.randint(0, 7, (args.batch_size,), generator=generator)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def forward(model, batch) -> None:
    model.eval()
    with torch.no_grad():
        model(**batch)


def forward_backward(model, batch) -> None:
    model.train()
    model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)


def timed(step, model, batch) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all of this process's threads) of one step."""
    start, start_cpu = time.perf_counter(), time.process_time()
    step(model, batch)
    return time.perf_counter() - start, time.process_time() - start_cpu


def paired_time_ratios(step, reference, candidate, batch, pairs: int, warmup: int, reference_name: str) -> dict:
    for _ in range(warmup):
        step(reference, batch)
        step(candidate, batch)
    ratios, cpu_ratios, reference_seconds = [], [], []
    for pair in range(pairs):
        if pair % 2 == 0:
            reference_time, candidate_time = timed(step, reference, batch), timed(step, candidate, batch)
        else:
            candidate_time, reference_time = timed(step, candidate, batch), timed(step, reference, batch)
        ratios.append(candidate_time[0] / reference_time[0])
        cpu_ratios.append(candidate_time[1] / reference_time[1])
        reference_seconds.append(reference_time[0])
    # CPU time leaves out the time the process waits for a core, which other jobs inflate; it counts the threads'
    # spinning too, and a busy machine's shared caches still slow both.
    return {
        "median": round(statistics.median(ratios), 4),
        "min": round(min(ratios), 4),
        "max": round(max(ratios), 4),
        "cpu_time_median": round(statistics.median(cpu_ratios), 4),
        "cpu_time_min": round(min(cpu_ratios), 4),
        "cpu_time_max": round(max(cpu_ratios), 4),
        "pairs": pairs,
        f"{reference_name}_median_seconds": round(statistics.median(reference_seconds), 3),
    }


def flop_ratio(step, reference, candidate, batch) -> float | None:
    """
    The exact FLOP ratio of one step; None where torch's counter cannot follow the model (its module tracker asserts
    on DeBERTa-v2's relative position embeddings under autograd, torch 2.13).
    """
    totals = []
    for model in (reference, candidate):
        counter = FlopCounterMode(display=False)
        try:
            with counter:
                step(model, batch)
        except AssertionError:
            return None
        totals.append(counter.get_total_flops())
    return round(totals[1] / totals[0], 5)


def saved_activation_bytes(model, batch) -> dict[str, int]:
    """
    Bytes autograd keeps for backward in one training forward pass (exact; parameters not counted): `held`, each
    tensor's storage once, which is what memory holds (a layer's input, saved by its query, key and value projections,
    is held once); `per_save`, every save counted, the measure of the tables before 2026-12-06.
    """
    parameters = {param.untyped_storage().data_ptr() for param in model.parameters()}
    storages, per_save = {}, 0

    def pack(tensor):
        nonlocal per_save
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            per_save += tensor.numel() * tensor.element_size()
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(**batch).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return {"held": sum(storages.values()), "per_save": per_save}


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def memory_probe(args: argparse.Namespace) -> None:
    """Child process: build one model, run one training step, print the peak RSS growth during the step."""
    reference, candidate = build_models(args)
    model = candidate if args.memory_probe == "candidate" else reference
    del reference, candidate
    batch = make_batch(args)
    baseline = current_rss_bytes()
    forward_backward(model, batch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"baseline": baseline, "peak": peak}))


def peak_memory_ratios(args: argparse.Namespace, argv: list[str]) -> dict:
    def probe(which: str) -> dict:
        command = [sys.executable, __file__, *argv, "--memory-probe", which]
        completed = subprocess.run(command, capture_output=True, text=True, check=True)
        return json.loads(completed.stdout.strip().splitlines()[-1])

    step_ratios, total_ratios = [], []
    for pair in range(args.memory_pairs):
        order = ("reference", "candidate") if pair % 2 == 0 else ("candidate", "reference")
        results = {which: probe(which) for which in order}
        growth = {which: result["peak"] - result["baseline"] for which, result in results.items()}
        step_ratios.append(growth["candidate"] / growth["reference"])
        total_ratios.append(results["candidate"]["peak"] / results["reference"]["peak"])
    return {
        "step_growth_median": round(statistics.median(step_ratios), 4),
        "step_growth_min": round(min(step_ratios), 4),
        "step_growth_max": round(max(step_ratios), 4),
        "process_peak_median": round(statistics.median(total_ratios), 4),
        "pairs": args.memory_pairs,
    }


def measure(args: argparse.Namespace, argv: list[str], forward_time: bool = True) -> dict:
    """
    The report of one comparison on `args.family`: time ratios (of the forward pass too, if `forward_time`), FLOP and
    saved-bytes ratios, and peak memory from subprocesses run with `argv`.
    """
    reference, candidate = build_models(args)
    reference_name, candidate_name = COMPARISONS[args.compare]
    if args.compare == "dlfa":  # the stock head of the family
        reference_name = args.family
    batch = make_batch(args)
    report = {
        "setup": {
            "compare": f"{candidate_name} vs {reference_name}",
            "family": args.family,
            "head": args.head,
            "batch_size": args.batch_size,
            "seq_length": args.seq_length,
            "num_layers": args.num_layers,
            "hidden_size": args.hidden_size,
            "fusion_layer": args.fusion_layer,
            **({"search_layers": args.search_layers} if args.compare == "layer-search" else {}),
            "aif_reduction": args.aif_reduction,
            "aif_gate": args.aif_gate,
            "aif_norm": args.aif_norm,
            "threads": args.threads,
            "torch": torch.__version__,
            "load_average_at_start": provenance.load_average(),
        },
        "parameters": {
            reference_name: sum(param.numel() for param in reference.parameters()),
            candidate_name: sum(param.numel() for param in candidate.parameters()),
        },
    }
    if forward_time:
        report["forward_time_ratio"] = paired_time_ratios(
            forward, reference, candidate, batch, args.pairs, args.warmup, reference_name
        )
    report["forward_backward_time_ratio"] = paired_time_ratios(
        forward_backward, reference, candidate, batch, args.pairs, args.warmup, reference_name
    )
    report["forward_flop_ratio"] = flop_ratio(forward, reference, candidate, batch)
    report["forward_backward_flop_ratio"] = flop_ratio(forward_backward, reference, candidate, batch)
    saved = {
        "reference": saved_activation_bytes(reference, batch),
        "candidate": saved_activation_bytes(candidate, batch),
    }
    report["saved_bytes_ratio"] = {
        kind: round(saved["candidate"][kind] / saved["reference"][kind], 4) for kind in ("held", "per_save")
    }
    if args.memory_pairs:
        report["peak_memory_ratio"] = peak_memory_ratios(args, argv)
    report["setup"]["load_average_at_end"] = provenance.load_average()
    return report


def cost_table(args: argparse.Namespace, argv: list[str]) -> dict:
    """
    `--family all`: `measure` on every family of `ENCODER_FAMILIES` in turn, in this process (forward+backward only),
    with the code, versions, command, load and wall time that made them; written to `--output` after each family
    (`"complete": false` until the last), so that a stopped run keeps the families it measured.
    """
    started, load_before = time.monotonic(), provenance.load_average()
    made_by = provenance.benchmark_made_by(Path(__file__).resolve())
    families = {}

    def archive(complete: bool) -> dict:
        return {
            "what": "benchmarks/overhead.py --family all: DLFA against each family's stock head, side by side",
            "command": "python benchmarks/overhead.py " + " ".join(argv),
            "complete": complete,
            "date": provenance.utc_now(),
            **made_by,
            "wall_seconds": round(time.monotonic() - started, 1),
            "load_average_before": load_before,
            "load_average_after": provenance.load_average(),
            "families": families,
        }

    for family in ENCODER_FAMILIES:
        family_args = argparse.Namespace(**{**vars(args), "family": family})
        families[family] = measure(family_args, [*argv, "--family", family], forward_time=False)  # the last one wins
        print(f"{family}: done after {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        if args.output and len(families) < len(ENCODER_FAMILIES):
            write_atomically(args.output, json.dumps(archive(False), indent=2) + "\n")
    return archive(True)


def table(archive: dict) -> str:
    """
    The README's cost table: one row per family of a `cost_table` archive (peak memory where it was measured), and the
    1-minute load average at each family's start and end.
    """
    reports = archive["families"]
    memory = all("peak_memory_ratio" in report for report in reports.values())
    header = ("family", "fwd+bwd wall time, median [min-max]", "fwd+bwd CPU time, median [min-max]", "fwd+bwd FLOPs",
              "bytes saved for backward (held)", *(["peak memory of a step (growth)"] if memory else []),
              "load average")  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for family, report in reports.items():
        time_ratio, flops, load = report["forward_backward_time_ratio"], report["forward_backward_flop_ratio"], (
            report["setup"]["load_average_at_start"][0], report["setup"]["load_average_at_end"][0])  # fmt: skip
        cells = [
            family,
            f"{time_ratio['median']:.3f} [{time_ratio['min']:.2f}-{time_ratio['max']:.2f}]",
            f"{time_ratio['cpu_time_median']:.3f} [{time_ratio['cpu_time_min']:.2f}-{time_ratio['cpu_time_max']:.2f}]",
            "not countable" if flops is None else f"{flops:.4f}",
            f"{report['saved_bytes_ratio']['held']:.4f}",
            *([f"{report['peak_memory_ratio']['step_growth_median']:.4f}"] if memory else []),
            f"{load[0]:.1f}-{load[1]:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.show:
        print(table(json.loads(args.show.read_text())))
        return {}
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        memory_probe(args)
        return {}
    report = cost_table(args, argv) if args.family == ALL_FAMILIES else measure(args, argv)
    text = json.dumps(report, indent=2)
    print(text if args.family != ALL_FAMILIES else table(report))
    if args.output:
        write_atomically(args.output, text + "\n")
    return report


if __name__ == "__main__":
    main()
