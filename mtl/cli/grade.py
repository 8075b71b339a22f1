"""`mtl grade SUBMISSION.zip --gt GT_DIR`: score a submission the way the course's grader did."""

from __future__ import annotations

import argparse
import json
import sys

from mtl.flags import positive_float


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "grade",
        help="score a submission.zip against ground truth",
        description="Score predictions/semseg and predictions/depth of a submission.zip against GT_DIR/semseg and "
        "GT_DIR/depth; print one JSON object (grader, miou, si_log_rmse, total, per-class IoU, depth metrics). "
        "The archive is untrusted: anything malformed is rejected with a non-zero exit.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("submission", metavar="SUBMISSION.zip", help="the archive to score")
    parser.add_argument(
        "--gt", required=True, metavar="GT_DIR", help="ground-truth folder holding semseg/<i>.png and depth/<i>.png"
    )
    parser.add_argument("--json", default=None, metavar="OUT", help="also write the JSON result to this file")
    parser.add_argument(
        "--max-total-gib", type=positive_float, default=2.0, metavar="GIB",
        help="limit on the archive's total uncompressed size (declared sizes of all entries)",
    )
    parser.add_argument(
        "--max-entry-mib", type=positive_float, default=64.0, metavar="MIB",
        help="limit on the uncompressed size of one prediction entry",
    )
    parser.set_defaults(func=_grade)


def _grade(args: argparse.Namespace) -> int:
    from mtl.data.formats import DataFormatError
    from mtl.grading.grader import grade_submission
    from mtl.grading.safezip import GiB, MiB, SubmissionError

    try:
        result = grade_submission(
            args.submission,
            args.gt,
            max_total_bytes=int(args.max_total_gib * GiB),
            max_entry_bytes=int(args.max_entry_mib * MiB),
        )
    except (SubmissionError, DataFormatError, FileNotFoundError) as exc:
        print(f"mtl grade: error: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=2, allow_nan=False)
    print(text)
    if args.json:
        try:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        except OSError as exc:
            print(f"mtl grade: error: cannot write --json {args.json}: {exc}", file=sys.stderr)
            return 1
    return 0
