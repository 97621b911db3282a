"""The task: a config turned into data, a model and a loss, ready to train.

- ``data`` and ``splits``: built-in datasets, CSV and .npz files, or the user's function;
  train/val splits and folds, scaled on the training rows;
- ``models``: linear, MLP, a small CNN, or the user's own class;
- ``user_code``: importing the user's ``package.module:name``;
- ``build``: ``Task`` (data, model factory, loss, device, the seed slots' splits) and
  ``build_task``.

May import ``config``; nothing after it in the flow (train, search, insight, cli).
"""
