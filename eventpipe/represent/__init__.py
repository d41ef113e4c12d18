"""Model input: the :class:`InputRecipe` and the functions that apply it.

One room between binned events and the model: training and the runtime both turn
events (or counts) into the model's input here, and checkpoints carry the recipe.

* :class:`InputRecipe` / :class:`RecipeError` - the typed recipe and its errors;
* :func:`apply` - events or sensor counts -> float32 model input ``(..., n, C, H, W)``;
  its steps :func:`spatial_map`, :func:`model_counts`, :func:`count_scale`,
  :func:`normalise`;
* :class:`StreamingInput` - the same over a live stream of packets;
* :func:`recipe_from_checkpoint` / :func:`recipe_to_checkpoint` - (de)serialisation,
  version 1 files (no recipe) included.

See docs/represent.md.
"""

from eventpipe.represent.apply import (
    apply,
    count_scale,
    counts_dtype,
    map_frames,
    model_counts,
    normalise,
    sensor_counts,
    spatial_map,
)
from eventpipe.represent.checkpoint import recipe_from_checkpoint, recipe_from_v1, recipe_to_checkpoint
from eventpipe.represent.recipe import RECIPE_VERSION, InputRecipe, RecipeError
from eventpipe.represent.stream import StreamingInput

__all__ = [
    "RECIPE_VERSION", "InputRecipe", "RecipeError", "StreamingInput", "apply", "count_scale",
    "counts_dtype", "map_frames", "model_counts", "normalise", "recipe_from_checkpoint",
    "recipe_from_v1", "recipe_to_checkpoint", "sensor_counts", "spatial_map",
]
