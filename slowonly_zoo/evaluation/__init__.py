"""Reproducing reported numbers: metrics, the resumable per-video score store, the evaluation loop (and its
torch.distributed side), ``verify``, fusion, reports."""

from .fusion import ScoreMismatchError, fuse_files, fuse_tables
from .metrics import compute_metrics, mean_average_precision, mean_class_accuracy, top_k_accuracy
from .report import DEFAULT_TOLERANCE, exit_status, format_summary
from .runner import BadInputError, EvalDataset, EvalResult, EvalSample, evaluate
from .scores import RunMismatchError, ScoreTable, read_scores, write_scores
from .verification import ModelFactory, VerifyOptions, verify

__all__ = [
    "DEFAULT_TOLERANCE",
    "BadInputError",
    "EvalDataset",
    "EvalResult",
    "EvalSample",
    "ModelFactory",
    "RunMismatchError",
    "ScoreMismatchError",
    "ScoreTable",
    "VerifyOptions",
    "compute_metrics",
    "evaluate",
    "exit_status",
    "format_summary",
    "fuse_files",
    "fuse_tables",
    "mean_average_precision",
    "mean_class_accuracy",
    "read_scores",
    "top_k_accuracy",
    "verify",
    "write_scores",
]
