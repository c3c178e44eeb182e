"""k-diffusion (A1111's pin, 0.0.16) without its package __init__, which imports training utilities
(torchvision, clean-fid, ...): the sampling and external modules A1111 uses, with torchvision stubbed.
Import diffusers before this (it needs the real torchvision machinery absent here)."""
import importlib
import importlib.util
import sys
import types


def load_k_diffusion():
    """(k_diffusion.sampling, k_diffusion.external)."""
    if "k_diffusion.sampling" in sys.modules:
        return sys.modules["k_diffusion.sampling"], importlib.import_module("k_diffusion.external")
    for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"):
        sys.modules.setdefault(name, types.ModuleType(name))
    spec = importlib.util.find_spec("k_diffusion")
    pkg = types.ModuleType("k_diffusion")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["k_diffusion"] = pkg
    return importlib.import_module("k_diffusion.sampling"), importlib.import_module("k_diffusion.external")
