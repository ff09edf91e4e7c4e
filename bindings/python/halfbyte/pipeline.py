"""halfbyte.pipeline: transformers-style task pipelines over halfbyte.Encoder.

    clf = halfbyte.pipeline("sentiment-analysis", model="my-distilbert-sst2")
    clf("I loved it")              # [{'label': 'POSITIVE', 'score': 0.9998}]
    clf(["great", "awful"])        # [{'label': 'POSITIVE', ...}, {'label': 'NEGATIVE', ...}]
    fe = halfbyte.pipeline("feature-extraction", model="models/all-MiniLM-L6-v2", dtype="f32")
    fe(["a cat", "a dog"])         # float32 [2, 384]: pooled sentence embeddings
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Iterable, List, Literal, Mapping, Optional, Tuple, TypeVar, Union, overload

import numpy as np
import numpy.typing as npt

from ._core import Encoder

#: Task names accepted by pipeline() ("sentiment-analysis" is "text-classification").
TASKS = ("feature-extraction", "sentiment-analysis", "text-classification")

PathArg = Union[str, "os.PathLike[str]"]
# Encoder.embed's progress: None/False, True (a bar) or f(done, total) -> False to cancel.
EmbedProgressArg = Union[None, bool, Callable[[int, int], Optional[bool]]]
# One classification input: a text, a (text, text_pair) tuple or transformers'
# {"text": ..., "text_pair": ...} dict.
ClassifyInput = Union[str, Tuple[str, str], Mapping[str, str]]
Scores = List[Dict[str, Any]]

_P = TypeVar("_P", bound="_Pipeline")
_UNSET: Any = object()  # top_k not given: transformers' single-best ("legacy") output


class _Pipeline:
    task: str

    def __init__(self, task: str, encoder: Encoder, owned: bool) -> None:
        self.task = task
        self.model = encoder  #: the halfbyte.Encoder underneath
        self._owned = owned

    def close(self) -> None:
        """Free the encoder's memory if the pipeline loaded it (not one passed in)."""
        if self._owned:
            self.model.close()

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, dim={self.model.dim})"


class FeatureExtractionPipeline(_Pipeline):
    """Sentence embeddings: the model's pooling (mean or CLS) and L2 normalization
    (sentence-transformers' modules.json), as Encoder.embed."""

    def __call__(self, inputs: Union[str, Iterable[str]], *, normalize: Optional[bool] = None,
                 batch_size: int = 64, progress: EmbedProgressArg = None) -> npt.NDArray[np.float32]:
        """float32 [len(inputs), dim], one pooled vector per input ([1, dim] for a str).

        Unlike transformers' Python pipeline, which returns token-level hidden states
        [1, tokens, hidden] per input as nested lists, this returns the pooled sentence
        embedding (what retrieval uses, and what Transformers.js's feature-extraction
        with pooling and normalize returns: [n, dim]); ``.tolist()`` gives lists.
        """
        texts = [inputs] if isinstance(inputs, str) else inputs
        return self.model.embed(texts, batch_size=batch_size, normalize=normalize, progress=progress)


class TextClassificationPipeline(_Pipeline):
    """Labels and scores from a *ForSequenceClassification head, as transformers'
    text-classification pipeline."""

    def __init__(self, task: str, encoder: Encoder, owned: bool, default_function: Optional[str],
                 top_k: Any = _UNSET, function_to_apply: Optional[str] = None) -> None:
        super().__init__(task, encoder, owned)
        self._default_function = default_function
        self._top_k = top_k
        self._function = function_to_apply

    def __call__(self, inputs: Union[ClassifyInput, Iterable[ClassifyInput]], *, top_k: Any = _UNSET,
                 function_to_apply: Optional[str] = None,
                 batch_size: int = 64) -> Union[Scores, List[Scores]]:
        """Classify a text, a {"text": ..., "text_pair": ...} dict (a sentence pair), or a
        list of texts, such dicts and (text, text_pair) tuples.

        Without top_k: the best label per input, ``[{"label": "POSITIVE", "score": 0.99}]``
        for one text (a bare dict for one dict input, as transformers) and a list of such
        dicts for a list. With top_k (an int, or None for
        every label): the top_k labels best first, a list of dicts for one text and a list
        of such lists for a list. function_to_apply: "softmax", "sigmoid" or "none"; by
        default as transformers: none for problem_type regression, sigmoid for multi-label
        or one-label heads, softmax otherwise.
        """
        if top_k is _UNSET:
            top_k = self._top_k
        if top_k is not _UNSET and top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool)):
            raise TypeError(f"pipeline: top_k must be an int or None, got {type(top_k).__name__}")
        fn = function_to_apply or self._function or self._default_function
        single = isinstance(inputs, (str, Mapping))
        batch: Iterable[Any] = [inputs] if single else inputs
        items = [_item(x) for x in batch]
        results = self.model.classify(items, top_k=1 if top_k is _UNSET else top_k, function_to_apply=fn,
                                      batch_size=batch_size)
        if top_k is _UNSET:  # transformers' legacy shapes: a bare dict for a dict input
            if single:
                return results[0][0] if isinstance(inputs, Mapping) else [results[0][0]]  # type: ignore[return-value]
            return [r[0] for r in results]
        return results[0] if single else results


def _item(x: Any) -> Any:
    if isinstance(x, Mapping):
        if "text" not in x or not set(x) <= {"text", "text_pair"}:
            raise ValueError(f"pipeline: a dict input needs the keys 'text' and optionally 'text_pair', got {sorted(x)}")
        return (x["text"], x["text_pair"]) if "text_pair" in x else x["text"]
    return x


def _config_problem_type(path: str) -> Optional[str]:
    """config.json's problem_type as written (None when absent or unreadable)."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    try:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            value = json.load(f).get("problem_type")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


@overload
def pipeline(task: Literal["feature-extraction"], model: Union[PathArg, Encoder, None] = None,
             **kwargs: Any) -> FeatureExtractionPipeline: ...
@overload
def pipeline(task: Literal["sentiment-analysis", "text-classification"], model: Union[PathArg, Encoder, None] = None,
             **kwargs: Any) -> TextClassificationPipeline: ...
@overload
def pipeline(task: str, model: Union[PathArg, Encoder, None] = None,
             **kwargs: Any) -> Union[FeatureExtractionPipeline, TextClassificationPipeline]: ...


def pipeline(task: str, model: Union[PathArg, Encoder, None] = None,
             **kwargs: Any) -> Union[FeatureExtractionPipeline, TextClassificationPipeline]:
    """A transformers-style pipeline on a BERT-family encoder (halfbyte.Encoder).

    Args:
        task: "feature-extraction" (sentence embeddings: float32 [n, dim]),
            "text-classification" or its alias "sentiment-analysis" (labels and scores,
            as transformers' pipeline; needs a *ForSequenceClassification folder).
        model: a Hugging Face model folder (or its model.safetensors), or an open
            halfbyte.Encoder. Nothing is downloaded.
        kwargs: for text-classification, top_k and function_to_apply set the defaults
            of each call; the rest go to halfbyte.Encoder (dtype="q8_0", n_threads,
            max_length, precision) when model is a path.

    Raises ValueError for an unknown task (the message lists TASKS), a missing model,
    or a text-classification model without a classification head; the Encoder's
    errors for a bad folder.
    """
    if task not in TASKS:
        raise ValueError(f"pipeline: unknown task {task!r}; halfbyte supports {', '.join(map(repr, TASKS))}")
    if model is None:
        raise ValueError("pipeline: model= is required (a Hugging Face model folder); halfbyte downloads nothing")
    call_defaults = {k: kwargs.pop(k) for k in ("top_k", "function_to_apply") if k in kwargs}
    if call_defaults and task == "feature-extraction":
        raise TypeError(f"pipeline: {', '.join(call_defaults)} only applies to text-classification")
    problem_type: Optional[str]
    if isinstance(model, Encoder):
        if kwargs:
            raise TypeError(f"pipeline: {', '.join(kwargs)} only apply when model is a path (the Encoder is loaded)")
        enc, owned, problem_type = model, False, model.problem_type
    else:
        path = os.fsdecode(os.fspath(model))
        enc, owned = Encoder(path, **kwargs), True
        problem_type = _config_problem_type(path)
    if task == "feature-extraction":
        return FeatureExtractionPipeline(task, enc, owned)
    if not enc.labels:
        if owned:
            enc.close()
        raise ValueError(f"pipeline: {task} needs a BertForSequenceClassification or "
                         f"DistilBertForSequenceClassification folder (config.json architectures naming it); "
                         f"{model!r} has no classification head (use 'feature-extraction' for embeddings)")
    # transformers' default: none for regression, sigmoid for multi-label and for
    # one-label heads without problem_type, softmax otherwise.
    if problem_type == "regression":
        default: Optional[str] = "none"
    elif problem_type == "multi_label_classification" or len(enc.labels) == 1:
        default = "sigmoid"
    else:
        default = "softmax"
    return TextClassificationPipeline(task, enc, owned, default, **call_defaults)
