"""Comparing finished (or crashed) runs: `mtl results` tables and the `mtl report` HTML page.

Everything here reads a run directory only (config.yaml, metrics.csv, TensorBoard events, checkpoints);
nothing is recomputed, so a report shows exactly what training logged.
"""

# Choices of the commands' flags, here so that the CLI can offer them without importing torch.
FORMATS = ("markdown", "latex", "csv")
SORT_KEYS = ("grader", "miou", "si_log_rmse", "name")
