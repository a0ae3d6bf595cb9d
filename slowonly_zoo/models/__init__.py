"""Pure-PyTorch SlowOnly architectures (no knowledge of files, URLs or the model index)."""

from .head import I3DHead
from .non_local import NonLocal3d
from .resnet3d import SlowOnlyBackbone
from .slowonly import SlowOnly

__all__ = ["I3DHead", "NonLocal3d", "SlowOnly", "SlowOnlyBackbone"]
