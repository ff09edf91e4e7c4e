"""The callable classes Ray Data runs in its actors: each loads the encoder once
(after checking the model's hash on its node) and then embeds or classifies the
batches it is given."""

from __future__ import annotations

import hashlib
from typing import Any, Dict, List, Optional

import numpy as np

from ._model import ModelSpec


def _texts(batch: Dict[str, np.ndarray], column: str) -> List[str]:
    if column not in batch:
        raise KeyError(f"halfbyte.ray: the dataset has no column {column!r} (columns: {', '.join(batch)})")
    texts: List[str] = batch[column].tolist()
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"halfbyte.ray: column {column!r} holds a {type(t).__name__} (row {i} of a batch), "
                            "expected str")
    return texts


class _EncoderUDF:
    def __init__(self, spec: ModelSpec, dtype: str, threads: int, column: str, max_length: Optional[int],
                 inner_batch: int, hash_column: Optional[str], drop_text: bool) -> None:
        import halfbyte

        self.encoder = halfbyte.Encoder(spec.local_path(), dtype=dtype, n_threads=threads, max_length=max_length)
        self.column, self.inner_batch = column, inner_batch
        self.hash_column, self.drop_text = hash_column, drop_text

    def _finish(self, batch: Dict[str, np.ndarray], texts: List[str]) -> Dict[str, np.ndarray]:
        if self.hash_column:
            batch[self.hash_column] = np.array([hashlib.sha256(t.encode()).hexdigest() for t in texts], dtype=object)
        if self.drop_text:
            del batch[self.column]
        return batch


class EmbedUDF(_EncoderUDF):
    def __init__(self, spec: ModelSpec, dtype: str, threads: int, column: str, max_length: Optional[int],
                 inner_batch: int, normalize: Optional[bool], output_column: str,
                 hash_column: Optional[str] = None, drop_text: bool = False) -> None:
        super().__init__(spec, dtype, threads, column, max_length, inner_batch, hash_column, drop_text)
        self.normalize, self.output_column = normalize, output_column

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        texts = _texts(batch, self.column)
        batch[self.output_column] = self.encoder.embed(texts, batch_size=self.inner_batch, normalize=self.normalize)
        return self._finish(batch, texts)


class ClassifyUDF(_EncoderUDF):
    def __init__(self, spec: ModelSpec, dtype: str, threads: int, column: str, max_length: Optional[int],
                 inner_batch: int, function_to_apply: Optional[str], all_scores: bool,
                 hash_column: Optional[str] = None, drop_text: bool = False) -> None:
        super().__init__(spec, dtype, threads, column, max_length, inner_batch, hash_column, drop_text)
        self.labels: List[str] = list(self.encoder.labels)
        if not self.labels:
            raise ValueError(f"halfbyte.ray.classify_dataset: {spec.path} has no classification head "
                             "(config.json names no *ForSequenceClassification architecture)")
        self.index = {label: i for i, label in enumerate(self.labels)}
        self.function_to_apply, self.all_scores = function_to_apply, all_scores

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, Any]:
        texts = _texts(batch, self.column)
        ranked = self.encoder.classify(texts, top_k=None, function_to_apply=self.function_to_apply,
                                       batch_size=self.inner_batch)
        scores = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for row, items in zip(scores, ranked):
            for item in items:
                row[self.index[item["label"]]] = item["score"]
        best = scores.argmax(axis=1) if len(texts) else np.zeros(0, dtype=np.int64)
        batch["label"] = np.array([self.labels[i] for i in best], dtype=object)
        batch["score"] = scores[np.arange(len(texts)), best]
        if self.all_scores:
            batch["scores"] = scores
        return self._finish(batch, texts)
