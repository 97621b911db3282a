"""The task: a config turned into data, a model and a loss, ready to train.

- ``sources``: the arrays of a built-in dataset, a CSV or an .npz file;
- ``data`` and ``splits``: train/val splits and folds (scaled on the training rows), or the
  user's function's;
- ``models``: linear, MLP, a small CNN, or the user's own class;
- ``user_code``: importing the user's ``package.module:name``;
- ``build``: ``Task`` (data, model factory, loss, device, the seed slots' splits) and
  ``build_task``.

May import ``config``; nothing after it in the flow (train, search, insight, cli).
"""
