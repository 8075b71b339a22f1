"""Comparing finished (or crashed) runs: `mtl results` tables and the `mtl report` HTML page.

Everything here reads a run directory only (config.yaml, metrics.csv, TensorBoard events, checkpoints);
nothing is recomputed, so a report shows exactly what training logged. Nothing here names a task or a
dataset: columns, tables, legends and Δm come from the task and dataset plug-ins of each run.
"""

# Choices of the commands' flags, here so that the CLI can offer them without importing torch.
FORMATS = ("markdown", "latex", "csv")
DELTA_MODES = ("auto", "declared", "summary", "primary")
SORT_HELP = (
    "order of the runs: a score column — the dataset's headline score (grader on MiniScapes), a task's summary "
    "(miou, si_log_rmse, mean_angle, …) or a Δm form shown (delta_maninis, delta_mtan, delta_libmtl) — best first, or "
    "name (alphabetical); default: the headline score"
)
