"""Insight: what a finished (or running) study says, read back from its storage.

- ``results``: the winner, its confirmation and the per-stage story (``best_result``);
- ``decay``: the answer to "does decaying the lr help Adam here?";
- ``verify``: the winner, the runner-up and the defaults retrained on fresh seeds;
- ``formats``: results as JSON, YAML and pasteable torch code;
- ``report``, ``report_pages`` and ``plots``: what a report holds, the HTML/Markdown page,
  and every figure (PNG bytes);
- ``ci``: the regression gate and the search summary JSON.

May import everything before it in the flow (config, task, train, search); never the CLI.
"""
