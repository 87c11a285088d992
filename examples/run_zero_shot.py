#!/usr/bin/env python
"""
Fine-tune a DLFA head (or the last-layer baseline) on English and evaluate it zero-shot on other languages, with the
standard `Trainer`; `--fusion_layers` sweeps the fusion layer (the paper's Table 1), one model per layer.

    # offline, with the embedded multilingual backbone and local XTREME files
    python examples/run_zero_shot.py --task udpos --data_dir ../shared/data/xtreme-lite \\
        --model_name_or_path offline:multilingual-e5-small --fusion_layers 10,last --do_train --do_eval \\
        --output_dir runs/udpos

`python examples/run_zero_shot.py --help` lists every flag; the harness itself is `dlfa_zero_shot.cli.main`.
"""

import sys
from pathlib import Path

from dlfa_zero_shot.cli import main


if __name__ == "__main__":
    sys.exit(main(program=Path(__file__)))
