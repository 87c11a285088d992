"""
XTREME's zero-shot metrics as an `evaluate` module, loadable offline with
`evaluate.load(dlfa_zero_shot.tasks.XTREME_METRIC, config_name=...)`:

- `tagging` (PAN-X, UDPOS): seqeval's micro F1, precision and recall, exactly as XTREME reports them, and token
  accuracy beside them. On UPOS tags seqeval reads the first letter as a B/I prefix (NOUN NOUN is one chunk; SCONJ
  and CCONJ both become type CONJ): that quirk is kept for comparability with published numbers.
- `classification` (XNLI, PAWS-X): accuracy.
"""

import warnings

import datasets
import evaluate
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support


_CITATION = """\
@inproceedings{hu2020xtreme,
  title={XTREME: A Massively Multilingual Multi-task Benchmark for Evaluating Cross-lingual Generalization},
  author={Hu, Junjie and Ruder, Sebastian and Siddhant, Aditya and Neubig, Graham and Firat, Orhan and
          Johnson, Melvin},
  booktitle={ICML}, year={2020}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: `tagging`: a list of tag sequences (strings); `classification`: a list of label ids.
    references: the same shape as `predictions`.
Returns:
    `tagging`: {"f1", "precision", "recall", "token_accuracy"}; `classification`: {"accuracy"}. Fractions in [0, 1].
"""


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _KWARGS_DESCRIPTION)
class Xtreme(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        if self.config_name == "tagging":
            features = datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            )
        elif self.config_name == "classification":
            features = datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            )
        else:
            raise ValueError(
                f"config_name={self.config_name!r} is not supported: choose 'tagging' or 'classification'"
            )
        return evaluate.MetricInfo(
            description=__doc__, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION, features=features
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        if self.config_name == "classification":
            correct = sum(int(p == r) for p, r in zip(predictions, references))
            return {"accuracy": correct / len(references) if references else 0.0}
        for index, (predicted, reference) in enumerate(zip(predictions, references)):
            if len(predicted) != len(reference):
                raise ValueError(
                    f"sentence {index}: {len(predicted)} predicted tags for {len(reference)} reference tags"
                )
        tokens = sum(len(reference) for reference in references)
        correct = sum(
            p == r for predicted, reference in zip(predictions, references) for p, r in zip(predicted, reference)
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*seems not to be NE tag")  # every UPOS tag, by design
            # one pass over the chunks: the numbers of seqeval's f1_score, precision_score and recall_score (only the
            # wording of its UndefinedMetricWarning, when no chunk is predicted or none is gold, differs)
            precision, recall, f1, _ = precision_recall_fscore_support(references, predictions, average="micro")
        return {
            "f1": float(f1),
            "precision": float(precision),
            "recall": float(recall),
            "token_accuracy": correct / tokens if tokens else 0.0,
        }
