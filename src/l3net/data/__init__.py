"""From videos to training pairs: the synthetic world, shard preparation, the shard format and
the AVC pair sampler (issue 3)."""

from .sampler import AugmentConfig, AVCPairs
from .shards import ShardSet, VideoRecord

__all__ = ["AVCPairs", "AugmentConfig", "ShardSet", "VideoRecord"]
