"""The MiniScapes benchmark of the course: its scores (the grader), the submission.zip a run packs, and
the grader that scores such an archive — untrusted input, read with mtl.grading.safezip."""
