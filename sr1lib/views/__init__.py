"""Static views: escaped HTML of trajectories and tables, as pure functions of run folders and results.

    trajectory.py  render_trajectory_html / render_comparison_html: what the loss sees, token by token
    select.py      load a run's logged trajectories, filter them, one question across steps
    tables.py      html_table, table2_html (the paper's Table-2 layout beside its numbers),
                   final_table_html (the ablation's final table)

They sit below `sr1lib.experiments`, which publishes them as report headlines, and below the widgets
and figures that show them; nothing here imports ipywidgets or matplotlib.
"""
