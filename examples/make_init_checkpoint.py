"""
Make a DLFA "init" checkpoint from any BERT, so the stock transformers example scripts train DLFA unchanged:

    python examples/make_init_checkpoint.py --base bert-base-multilingual-cased --fusion_layer 8 --out dlfa-mbert-l8
    python run_ner.py --model_name_or_path dlfa-mbert-l8 --trust_remote_code ...          # token classification
    python run_classification.py --model_name_or_path dlfa-mbert-l8 --trust_remote_code ...

The folder holds a `DLFABertModel` (the BERT weights, and the fusion block as `_init_weights` makes it), the tokenizer,
the config with an `auto_map` for AutoModel, AutoModelForTokenClassification and AutoModelForSequenceClassification,
and the code files; the example script adds its own head (new weights, `num_labels` from its data).
"""

import argparse
import sys
from pathlib import Path

from transformers import AutoTokenizer


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from modeling_dlfa import DLFABertModel  # noqa: E402
from offline_backbone import resolve_backbone  # noqa: E402


def make_init_checkpoint(base: str, fusion_layer: int, out: Path, overwrite: bool = False, **aif) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty; pass --overwrite to replace its contents")
    backbone = resolve_backbone(base)
    model = DLFABertModel.from_pretrained(backbone, fusion_layer=fusion_layer, **aif)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(backbone).save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="a BERT on the Hub or on disk, or offline:multilingual-e5-small")
    parser.add_argument("--fusion_layer", type=int, required=True, help="1 .. num_hidden_layers - 1")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--aif_gate", choices=["aff", "paper"], default="aff")
    parser.add_argument("--aif_norm", choices=["batch", "layer"], default="batch")
    parser.add_argument("--aif_reduction", type=int, default=4)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    out = make_init_checkpoint(
        args.base,
        args.fusion_layer,
        args.out,
        args.overwrite,
        aif_gate=args.aif_gate,
        aif_norm=args.aif_norm,
        aif_reduction=args.aif_reduction,
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
