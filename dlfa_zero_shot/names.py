"""
Run names and their inverse, written once: a run is one model, one configuration trained with one seed, and its folder
and its name in every table is `run_name(...)`: `baseline` (the encoder family's stock head on the last layer),
`aif-layer-NN` (DLFA), `concat-layer-NN` and `scalar-mix` (peer fusions), and, for DLFA settings other than the
defaults, `paper-gate-layer-NN`, `gate-init-X-layer-NN`, `fusion-lr-xF-layer-NN`; every further setting that changes
the run is a `+` qualifier (`aif-layer-08+r8+layer-norm+align-first+lora-r8`). `configuration_of` reads a name back.

This module sits at the bottom of the package: it imports nothing else of it (the harness, the benchmarks, the report
and the model building all name runs with it).
"""

from modeling_dlfa.configuration_dlfa import DLFABertConfig


DEFAULT_LABEL_ALIGNMENT = "first_content"  # the harness's; a checkpoint without `label_alignment` used "first"
BASELINE = "baseline"
AIF_PREFIX = "aif-layer-"
CONCAT_PREFIX = "concat-layer-"
SCALAR_MIX = "scalar-mix"
LAYER_SEARCH = "layer-search"  # the shared-encoder model of a one-pass layer search
ONE_PASS_PREFIX = "one-pass-"  # a head kept from it: `one-pass-aif-layer-10`
# The DLFA settings' defaults are the configuration's (its class attributes); a run name mentions only deviations.
DEFAULT_GATE = DLFABertConfig.aif_gate
DEFAULT_GATE_INIT = DLFABertConfig.aif_gate_init
DEFAULT_REDUCTION = DLFABertConfig.aif_reduction
DEFAULT_NORM = DLFABertConfig.aif_norm


def run_name(
    fusion_layer: int | None,
    fusion_method: str | None = "aif",
    aif_gate: str = DEFAULT_GATE,
    aif_gate_init: float = DEFAULT_GATE_INIT,
    fusion_lr_factor: float | None = None,
    *,
    aif_reduction: int = DEFAULT_REDUCTION,
    aif_norm: str = DEFAULT_NORM,
    label_alignment: str | None = DEFAULT_LABEL_ALIGNMENT,
    lora_r: int = 0,
) -> str:
    """
    The name of one configuration; `fusion_method=None` is the last-layer baseline (so is `fusion_layer=None` with a
    fusion of two layers; the scalar mix, which mixes every layer, takes none). Every setting that changes what
    the run computes and differs from its default is in the name: the first DLFA deviation picks the stem
    (`paper-gate-layer-08`), every further one is a qualifier after a `+` (`paper-gate-layer-08+gate-init-0.1+r8`), so
    two runs of one sweep that differ in any of them never share a folder. `label_alignment=None`: a pair task.
    """
    fused = fusion_method == "scalar_mix" or (fusion_method is not None and fusion_layer is not None)
    aif = fused and fusion_method == "aif"
    deviations = []  # only the settings that change this configuration's model
    if aif and aif_gate != DEFAULT_GATE:
        deviations.append(f"{aif_gate}-gate")
    if aif and aif_gate_init != DEFAULT_GATE_INIT:
        deviations.append(f"gate-init-{aif_gate_init:g}")
    if fused and fusion_lr_factor not in (None, 1):
        deviations.append(f"fusion-lr-x{fusion_lr_factor:g}")
    if aif and aif_reduction != DEFAULT_REDUCTION:
        deviations.append(f"r{aif_reduction}")
    if aif and aif_norm != DEFAULT_NORM:
        deviations.append(f"{aif_norm}-norm")
    if label_alignment not in (None, DEFAULT_LABEL_ALIGNMENT):
        deviations.append(f"align-{label_alignment}")
    if lora_r > 0:
        deviations.append(f"lora-r{lora_r}")

    if fusion_method == "scalar_mix":  # mixes every layer: the fusion layer plays no part
        stem = SCALAR_MIX
    elif not fused:
        stem = BASELINE
    elif fusion_method == "concat":
        stem = f"concat-layer-{fusion_layer:02d}"
    elif fusion_method != "aif":
        raise ValueError(f"fusion method {fusion_method!r} has no run name")
    elif deviations and (deviations[0].endswith("-gate") or deviations[0].startswith(STEM_DEVIATIONS)):
        stem = f"{deviations.pop(0)}-layer-{fusion_layer:02d}"
    else:
        stem = f"aif-layer-{fusion_layer:02d}"
    return "+".join([stem, *deviations])


STEM_DEVIATIONS = ("gate-init-", "fusion-lr-x")  # besides the gate, the deviations that may open a DLFA stem
QUALIFIERS = {  # qualifier prefix -> (setting, parser); `run_name` writes them in this order
    "gate-init-": ("aif_gate_init", float),
    "fusion-lr-x": ("fusion_lr_factor", float),
    "r": ("aif_reduction", int),
    "align-": ("label_alignment", str),
    "lora-r": ("lora_r", int),
}


def configuration_of(name: str) -> dict:
    """
    The inverse of `run_name`: the settings a run name stands for (`fusion_layer` None for the baseline and the
    scalar mix, `fusion_lr_factor` None for the shared learning rate). Raises ValueError on a name it does not make.
    """
    stem, *qualifiers = name.split("+")
    settings = {"fusion_layer": layer_of(stem), "fusion_method": "aif", "aif_gate": DEFAULT_GATE,
                "aif_gate_init": DEFAULT_GATE_INIT, "fusion_lr_factor": None, "aif_reduction": DEFAULT_REDUCTION,
                "aif_norm": DEFAULT_NORM, "label_alignment": DEFAULT_LABEL_ALIGNMENT, "lora_r": 0}  # fmt: skip
    kind = stem.rsplit("-layer-", 1)[0] if settings["fusion_layer"] is not None else stem
    if settings["fusion_layer"] is None and stem not in (BASELINE, SCALAR_MIX):
        raise ValueError(f"{name!r} is not a run name (e.g. baseline, aif-layer-08, concat-layer-08, scalar-mix)")
    if stem == BASELINE:
        settings["fusion_method"] = None
    elif stem == SCALAR_MIX:
        settings["fusion_method"] = "scalar_mix"
    elif kind == "concat":
        settings["fusion_method"] = "concat"
    elif kind.endswith("-gate"):
        settings["aif_gate"] = kind.removesuffix("-gate")
    elif kind.startswith(STEM_DEVIATIONS):
        qualifiers.insert(0, kind)
    elif kind != "aif":
        raise ValueError(f"{name!r} is not a run name (e.g. baseline, aif-layer-08, concat-layer-08, scalar-mix)")
    for qualifier in qualifiers:
        if qualifier.endswith("-norm"):
            settings["aif_norm"] = qualifier.removesuffix("-norm")
            continue
        prefix = next((prefix for prefix in QUALIFIERS if qualifier.startswith(prefix)), None)
        try:
            setting, parse = QUALIFIERS[prefix]
            settings[setting] = parse(qualifier.removeprefix(prefix))
        except (KeyError, ValueError):
            raise ValueError(f"{name!r} is not a run name: {qualifier!r} is no setting") from None
    made = run_name(**settings)
    if made != name:
        raise ValueError(f"{name!r} is not a run name; did you mean {made!r}?")
    return settings


def layer_of(name: str) -> int | None:
    """The fusion layer a run name carries (`aif-layer-08` -> 8, `aif-layer-08+r8` -> 8), or None (baseline, scalar mix)."""
    _, found, layer = name.split("+", 1)[0].rpartition("layer-")
    return int(layer) if found and layer.isdigit() else None


def order_key(name: str) -> tuple:
    """Table order: the baseline, the DLFA layers, then the other configurations by name."""
    return (name != BASELINE, not name.startswith(AIF_PREFIX), name)
