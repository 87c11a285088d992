"""
Make a DLFA "init" checkpoint from an encoder of any supported family (BERT, XLM-R, RoBERTa, DeBERTa-v2, DistilBERT,
ELECTRA), so the stock transformers example scripts train DLFA unchanged:

    python examples/make_init_checkpoint.py --base bert-base-multilingual-cased --fusion_layer 8 --out dlfa-mbert-l8
    python run_ner.py --model_name_or_path dlfa-mbert-l8 --trust_remote_code ...          # token classification
    python run_classification.py --model_name_or_path dlfa-mbert-l8 --trust_remote_code ...

The folder holds a `DLFABertModel` for BERT, a `DLFAModel` of the same family otherwise (the encoder's weights, and
the fusion block as `_init_weights` makes it), the tokenizer,
the config with an `auto_map` for AutoModel, AutoModelForTokenClassification and AutoModelForSequenceClassification,
and the code files; the example script adds its own head (new weights, `num_labels` from its data).
"""

import argparse
from pathlib import Path

from transformers import AutoModel

from dlfa_zero_shot import names
from dlfa_zero_shot.backbone import prepare_backbone
from dlfa_zero_shot.files import staged_folder
from dlfa_zero_shot.heads import check_fusable, dlfa_config
from dlfa_zero_shot.offline_backbone import resolve_backbone
from dlfa_zero_shot.training import load_new_head
from modeling_dlfa.configuration_dlfa import AIF_GATES, AIF_NORMS, FUSION_METHODS


def make_init_checkpoint(base: str, fusion_layer: int, out: Path, overwrite: bool = False, **aif) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty; pass --overwrite to replace its contents")
    backbone = prepare_backbone(resolve_backbone(base), base, check_config=check_fusable)
    config = dlfa_config(backbone, fusion_layer=fusion_layer, **aif)
    model = load_new_head(AutoModel, backbone.path, config=config)  # refuses a random encoder
    with staged_folder(out) as staging:  # whole or not at all
        model.save_pretrained(staging)
        backbone.tokenizer.save_pretrained(staging)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--base", required=True, help="an encoder on the Hub or on disk, or offline:multilingual-e5-small(-xlmr)"
    )
    parser.add_argument("--fusion_layer", type=int, required=True, help="1 .. num_hidden_layers - 1")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write (must be empty or absent)")
    parser.add_argument("--fusion_method", choices=FUSION_METHODS, default="aif", help="AIF (DLFA) or a peer fusion")
    parser.add_argument("--aif_gate", choices=AIF_GATES, default=names.DEFAULT_GATE, help="the AIF attention map")
    parser.add_argument(
        "--aif_gate_init", type=float, default=names.DEFAULT_GATE_INIT, help="the gate's starting value in (0, 1)"
    )
    parser.add_argument(
        "--aif_norm", choices=AIF_NORMS, default=names.DEFAULT_NORM, help="normalisation in the AIF branches"
    )
    parser.add_argument("--aif_reduction", type=int, default=names.DEFAULT_REDUCTION, help="AIF bottleneck ratio r")
    parser.add_argument("--overwrite", action="store_true", help="replace the contents of a non-empty --out")
    args = parser.parse_args()
    out = make_init_checkpoint(
        args.base, args.fusion_layer, args.out, args.overwrite, fusion_method=args.fusion_method,
        aif_gate=args.aif_gate, aif_gate_init=args.aif_gate_init, aif_norm=args.aif_norm,
        aif_reduction=args.aif_reduction,
    )  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
