"""torch.hub entrypoints: ``torch.hub.load('<owner>/slowonly-zoo', 'slowonly_r50_8x8x1_k400', pretrained=True)``.

One entrypoint per canonical model name (ensembles excluded), plus ``list_models``. Every entrypoint is
``slowonly_zoo.create_model`` bound to its name, so it accepts the same keyword arguments.
"""

dependencies = [
    "torch",
    "timm",
    "numpy",
    "safetensors",
    "huggingface_hub",
    "yaml",
    "av",
    "requests",
    "tqdm",
    "filelock",
    "PIL",
]

import functools as _functools  # noqa: E402
import os as _os  # noqa: E402
import sys as _sys  # noqa: E402

# torch.hub puts the checkout on sys.path; make the in-tree package win over an older installed copy.
_sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))

from slowonly_zoo.factory import create_model as _create_model  # noqa: E402
from slowonly_zoo.index import get_model_info as _get_model_info  # noqa: E402
from slowonly_zoo.index import list_models  # noqa: E402

for _name in list_models():
    if _get_model_info(_name).members:
        continue
    _entry = _functools.partial(_create_model, _name)
    _functools.update_wrapper(_entry, _create_model)
    _entry.__name__ = _name
    _entry.__doc__ = f"SlowOnly {_name}.\n\n" + (_create_model.__doc__ or "")
    globals()[_name] = _entry
del _name, _entry
