"""Success and precision plots (OTB / UAV123 style) of one or more trackers, drawn with Agg."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use('Agg')  # files only, no display: must be chosen before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# (curve key in results.json, figure file, x label, y label, headline key, legend format)
_PLOTS = (
    ('success', 'success.png', 'Overlap threshold', 'Success rate', 'auc', 'AUC {:.3f}'),
    ('precision', 'precision.png', 'Location error threshold (px)', 'Precision',
     'precision_20', 'P@20 {:.3f}'),
    ('norm_precision', 'norm_precision.png', 'Normalised location error threshold',
     'Normalised precision', 'norm_precision', 'nP@0.2 {:.3f}'),
)


def plot_curves(thresholds: np.ndarray, curves: Mapping[str, np.ndarray],
                labels: Mapping[str, str], x_label: str, y_label: str, title: str,
                path: Path) -> Path:
    """Draw several trackers' curves on one axis; ``labels`` gives each tracker's legend text."""
    figure, axis = plt.subplots(figsize=(6, 5))
    try:
        for name, curve in curves.items():
            axis.plot(thresholds, curve, linewidth=2, label=labels[name])
        axis.set_xlim(float(thresholds[0]), float(thresholds[-1]))
        axis.set_ylim(0.0, 1.0)
        axis.set_xlabel(x_label)
        axis.set_ylabel(y_label)
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend(loc='lower right' if 'Success' not in y_label else 'lower left')
        figure.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return path


def plot_report(report: dict, out_dir: Path) -> list[Path]:
    """The three OPE plots of every tracker in a results.json report, best tracker first."""
    written = []
    for key, file_name, x_label, y_label, headline, legend in _PLOTS:
        entries = sorted(report['trackers'].items(),
                         key=lambda item: -item[1]['overall'][headline])
        curves = {name: np.asarray(e['overall']['curves'][key]) for name, e in entries}
        labels = {name: f'{name} [{legend.format(e["overall"][headline])}]'
                  for name, e in entries}
        title = f'{y_label} plots of OPE on {report["dataset"]}'
        written.append(plot_curves(np.asarray(report['thresholds'][key]), curves, labels,
                                   x_label, y_label, title, Path(out_dir) / file_name))
    return written
