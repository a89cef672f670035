"""Figures and tables for notebooks and reports, drawn from run folders and study results only.

    training.py  training_curves, ablation_figure (mean +- band over seeds, alarms marked),
                 response_length_figure (the paper's Fig. 2 quantities), save_figure
    retrieval.py recall_figure (answer recall@k, latency, build time)
The HTML tables (table2_html, final_table_html, html_table) live in `sr1lib.views.tables`, below the
experiments that publish them; they are re-exported here for notebooks.

matplotlib and pandas are imported inside the functions, so `import sr1lib.viz` stays light.
"""

from sr1lib.views.tables import final_table_html, html_table, table2_html
from sr1lib.viz.retrieval import recall_figure
from sr1lib.viz.training import ablation_figure, response_length_figure, save_figure, training_curves

__all__ = ["ablation_figure", "final_table_html", "html_table", "recall_figure", "response_length_figure",
           "save_figure", "table2_html", "training_curves"]
