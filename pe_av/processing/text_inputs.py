"""Inputs and outputs of :meth:`PeTokenizer.__call__ <pe_av.processing.text.PeTokenizer.__call__>`: which
texts (and pairs) go to the backend, and the lists each ``tokenizers.Encoding`` gives back."""

from __future__ import annotations


def batch_inputs(text: object, text_pair: object, pretokenized: bool) -> tuple[bool, list]:
    """``(batched, inputs for encode_batch)``; texts checked (a string, or a non-empty list of strings)."""
    if pretokenized:
        batched = isinstance(text, (list, tuple)) and bool(text) and isinstance(text[0], (list, tuple))
        texts = [check_texts(t, f"text[{i}]") for i, t in enumerate(text)] if batched else [check_texts(text)]
    else:
        batched = isinstance(text, (list, tuple))
        texts = check_texts(text)
    if text_pair is None:
        return batched, texts
    if batched:
        if isinstance(text_pair, str):
            raise TypeError("when tokenizing batches of text, `text_pair` must be a list or tuple with the same "
                            "length as `text`.")
        pairs = [list(p) for p in text_pair] if pretokenized else check_texts(text_pair, "text_pair")
        if len(pairs) != len(texts):
            raise ValueError(f"batch length of `text`: {len(texts)} does not match batch length of `text_pair`: "
                             f"{len(pairs)}.")
        return batched, list(zip(texts, pairs))
    pair = list(check_texts(text_pair, "text_pair")) if pretokenized else check_texts(text_pair, "text_pair")[0]
    return batched, [(texts[0], pair)]


def collect_outputs(encodings: list, wanted: dict[str, bool], return_length: bool, overflowing: bool):
    """The output lists of each encoding (and its overflows), as transformers' ``_convert_encoding``."""
    data: dict[str, list] = {"input_ids": []}
    data.update({key: [] for key, on in wanted.items() if on})
    flat, mapping = [], []
    for index, encoding in enumerate(encodings):
        parts = [encoding, *encoding.overflowing] if overflowing else [encoding]
        for part in parts:
            data["input_ids"].append(part.ids)
            for key, attr in (("token_type_ids", "type_ids"), ("attention_mask", "attention_mask"),
                              ("special_tokens_mask", "special_tokens_mask"), ("offset_mapping", "offsets")):
                if key in data:
                    data[key].append(getattr(part, attr))
            if return_length:
                data.setdefault("length", []).append(len(part.ids))
            flat.append(part)
            mapping.append(index)
    if overflowing:
        data["overflow_to_sample_mapping"] = mapping
    return data, flat


def check_texts(text: object, name: str = "text") -> list[str]:
    """A string or a non-empty list/tuple of strings, as a list."""
    if isinstance(text, str):
        return [text]
    if not isinstance(text, (list, tuple)):
        raise TypeError(f"{name} must be a string or a list of strings, got {type(text).__name__}")
    if not text:
        raise ValueError(f"{name} is an empty list; give at least one string")
    for i, item in enumerate(text):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{i}] must be a string, got {type(item).__name__}")
    return list(text)
