"""The recipe in a checkpoint: written as plain data, read back (old files included).

``snn`` checkpoints keep the recipe as the plain dict of :meth:`InputRecipe.to_dict`
under ``"recipe"`` (``recipe_version: 2``); ``snn`` stores and returns it without
knowing what it means.  Files written before the recipe existed (version 1) say how
they were trained only through ``extra`` (``window_us``, ``representation``,
``channels``, ``clip_count``, ``resize``, ``stream_stride_us``) and ``input_size``;
:func:`recipe_from_checkpoint` reads those exactly as the runtime read them, with two
fixes: training wrote ``input_size`` as (H, W) (it is (W, H) now), and it saturated
counts at ``min(clip_count, 255)``.
"""

from __future__ import annotations

from typing import Any, Mapping

from eventpipe.represent.recipe import InputRecipe, RecipeError

#: version-1 spellings of the normalisation (training's ``representation``)
V1_NORMALISATION = {"log": "log1p", "log1p": "log1p", "counts": "counts", "binary": "binary"}


def recipe_to_checkpoint(recipe: InputRecipe) -> dict:
    """The plain dict ``snn.save_checkpoint(..., recipe=...)`` stores."""
    return recipe.to_dict()


def recipe_from_checkpoint(meta: Mapping[str, Any], *, source: str | None = None) -> InputRecipe:
    """The input recipe of a checkpoint's metadata (``snn.load_checkpoint``'s ``meta``):
    its ``recipe`` (version 2), else one rebuilt from ``extra`` + ``input_size``."""
    stored = meta.get("recipe")
    if stored is not None:
        return InputRecipe.from_dict(stored, source=source)
    try:
        return recipe_from_v1(meta.get("extra") or {}, meta.get("input_size"))
    except RecipeError as e:
        raise e.located(f"{source} (extra)" if source else "checkpoint extra") from None


def recipe_from_v1(extra: Mapping[str, Any], input_size=None) -> InputRecipe:
    """Version 1: ``extra`` as eventpipe training wrote it (``representation`` present;
    ``input_size`` is (H, W)), or anything else (``input_size`` read as (W, H), the
    runtime's defaults for what ``extra`` does not say)."""
    trained = "representation" in extra or "train_config" in extra
    size = None
    if input_size is not None:
        h_w = [int(v) for v in input_size]
        size = (h_w[1], h_w[0]) if trained else tuple(h_w)
    rep = extra.get("representation")
    norm = "counts"
    if rep is not None:
        if rep not in V1_NORMALISATION:
            raise RecipeError("normalisation", f"unknown representation {rep!r} "
                              f"(one of: {', '.join(V1_NORMALISATION)})")
        norm = V1_NORMALISATION[rep]
    clip = extra.get("clip_count")
    if clip is not None and trained:
        clip = min(int(clip), 255)
    return InputRecipe(size=size, window_us=extra.get("window_us") or 50_000,
                       stride_us=extra.get("stream_stride_us"),
                       channels=extra.get("channels") or "polarity",
                       clip_count=clip, pooling="mean" if extra.get("resize") == "area" else "sum",
                       normalisation=norm)
