"""The one module library: path layers, heads, freezing."""

from modules.heads import TaskHeads
from modules.layers import Conv2dModuleLayer, LinearModuleLayer, ModuleLayer
from modules.library import PathLibrary, conv_library, linear_library

__all__ = [
    "Conv2dModuleLayer",
    "LinearModuleLayer",
    "ModuleLayer",
    "PathLibrary",
    "TaskHeads",
    "conv_library",
    "linear_library",
]
