"""torch.hub entrypoints: ``torch.hub.load('<owner>/slowonly-zoo', 'slowonly_r50_8x8x1_k400', pretrained=True)``.

One entrypoint per canonical model name (ensembles excluded), plus ``list_models``. Every entrypoint is
``slowonly_zoo.create_model`` bound to its model, so it accepts the same keyword arguments.
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
from slowonly_zoo.factory import create_model_for_entry as _create_model_for_entry  # noqa: E402
from slowonly_zoo.index import get_model_info as _get_model_info  # noqa: E402
from slowonly_zoo.index import list_models  # noqa: E402

for _name in list_models():
    _model_entry = _get_model_info(_name)
    if _model_entry.members:
        continue
    # bound to the resolved entry: an entrypoint name is never read as a file path
    _entry = _functools.partial(_create_model_for_entry, _model_entry)
    _functools.update_wrapper(_entry, _create_model_for_entry)
    _entry.__name__ = _name
    _entry.__doc__ = f"SlowOnly {_name}.\n\n" + (_create_model.__doc__ or "")
    globals()[_name] = _entry
del _name, _entry, _model_entry
