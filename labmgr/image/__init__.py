"""Guest images: a YAML recipe -> debootstrap -> ext4 -> qcow2, cached by the recipe's hash.

    recipe = load_recipe(Path("tests/images/base.yaml"))
    image = build_image(recipe, reporter)        # BuiltImage(disk, kernel, initrd, recipe_hash, cached)

The disk holds the root filesystem directly (no partition table): boot it with
``kernel``/``initrd`` and ``root=/dev/vda``.
"""

from .build import BuiltImage, build_image, find_cached, image_key, iter_cached
from .recipe import BASE_PACKAGES, BASE_SERVICES, Recipe, load_recipe, recipe_hash

__all__ = [
    "BASE_PACKAGES",
    "BASE_SERVICES",
    "BuiltImage",
    "Recipe",
    "build_image",
    "find_cached",
    "image_key",
    "iter_cached",
    "load_recipe",
    "recipe_hash",
]
