"""The one module library: path layers, heads, freezing."""

from pathevo.modules.heads import TaskHeads
from pathevo.modules.layers import Conv2dModuleLayer, LinearModuleLayer, ModuleLayer
from pathevo.modules.library import PathLibrary, conv_library, linear_library

__all__ = [
    "Conv2dModuleLayer",
    "LinearModuleLayer",
    "ModuleLayer",
    "PathLibrary",
    "TaskHeads",
    "conv_library",
    "linear_library",
]
