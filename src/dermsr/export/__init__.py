"""Export the PyTorch model to other runtimes' formats, and the artifact cache."""

from .cache import artifact_key, cache_dir, cached_artifact

__all__ = ["artifact_key", "cache_dir", "cached_artifact"]
